"""The executor's watchdog: a thread that notices when an attempt holds the event loop.

Every attempt of an executor shares one event loop, so an `async def` that blocks it (a
`time.sleep`, blocking I/O, a CPU-bound loop) stalls all of them. The loop marks a beat every
`tick`; when no beat has come for longer than the project's `stall_timeout` while an asyncio task
is running, the thread reads the loop thread's Python stack (`sys._current_frames`) and reports
the stall once, on a pipe of its own: the channel to the supervisor belongs to the blocked loop.
The supervisor then replaces the executor (conveyor/worker/process.py, replacement.py,
decisions.py).

It decides nothing about runs, and never touches the loop's objects but to read which task runs.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

_HEADER = struct.Struct("!Q")  # as channel.py frames its messages
# frames left out of a stall's stack: Conveyor's own, and the event loop's
_NOT_USERS = tuple(
    str(Path(p).resolve()) + os.sep
    for p in (Path(__file__).parents[1], Path(asyncio.__file__).parent)
)


def users_stack(frame: object) -> str:
    """The stack of a thread's frame as a traceback reads it, the task's code only (all of it
    when every frame is Conveyor's or asyncio's)."""
    summary = traceback.extract_stack(frame)  # type: ignore[arg-type]
    own = traceback.StackSummary.from_list(
        [
            f
            for f in summary
            if not os.path.realpath(f.filename).startswith(_NOT_USERS)
            and not f.filename.startswith("<frozen ")  # the interpreter's start (runpy, ...)
        ]
    )
    return "".join((own or summary).format())


class Watchdog:
    """Watches `loop` (run from the thread calling `start`); `report(task, seconds, stack)` is
    called from the watchdog's thread, once, with the asyncio task that held the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: float,
        report: Callable[[asyncio.Task[object], float, str], None],
    ) -> None:
        self.loop = loop
        self.limit = limit
        self.tick = min(1.0, limit / 4)
        self.report = report
        self.beat = time.monotonic()
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        self.loop.call_soon(self._beat)
        threading.Thread(target=self._watch, name="conveyor-watchdog", daemon=True).start()

    def _beat(self) -> None:
        self.beat = time.monotonic()
        self.loop.call_later(self.tick, self._beat)

    def _watch(self) -> None:
        while True:
            time.sleep(self.tick)
            blocked = time.monotonic() - self.beat
            if blocked <= self.limit:
                continue
            # the loop may be starved (a busy machine) rather than held: only a task running on
            # it all that time is a stall
            task = asyncio.current_task(self.loop)
            frame = sys._current_frames().get(self._loop_thread)
            if task is None or frame is None:
                continue
            self.report(task, blocked, users_stack(frame))
            return  # once: the supervisor replaces this process


def pipe_sender(fd: int) -> Callable[[tuple[object, ...]], None]:
    """A function that writes a message on the watchdog's pipe, framed as channel.py frames."""

    def send(message: tuple[object, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:  # blocking writes: the thread has nothing else to do
            view = view[os.write(fd, view) :]

    return send


async def read_reports(fd: int, on_report: Callable[[tuple[object, ...]], None]) -> None:
    """Read the watchdog's reports from the read end of its pipe (in the supervisor) until the
    executor has gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while True:
            (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
            on_report(pickle.loads(await reader.readexactly(size)))
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass  # the executor exited
    finally:
        transport.close()
