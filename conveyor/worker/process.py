"""One executor process as the supervisor sees it: start it, talk to it, watch it, kill it.

Besides its channel, an executor has a pipe for its watchdog (conveyor/worker/watchdog.py): when
an attempt holds its event loop past `stall_timeout`, the report comes there, and the process is
killed so that the supervisor starts a fresh one (what each attempt in it becomes: decisions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.models import ModuleFailure, TaskDefinition
from conveyor.protocol import AttemptSpec
from conveyor.worker import decisions
from conveyor.worker.channel import Channel, ChannelClosed
from conveyor.worker.watchdog import read_reports

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PoolKey = tuple[str | None, str]  # (deployed version or None for the worker's own code, machine)


@dataclass(frozen=True)
class Loaded:
    """What an executor loaded: the tasks of the modules that imported, and those that did not."""

    tasks: list[TaskDefinition]
    failures: list[ModuleFailure]


@dataclass(slots=True)
class Inflight:
    spec: AttemptSpec
    started: float  # monotonic
    deadline: float | None  # monotonic; past it (and a grace) the process is killed


@dataclass
class ExecutorProcess:
    """A pre-started executor. `ready` resolves with what it loaded, or raises LoadFailed."""

    root: Path
    environment: str
    machine: str
    generation: int
    on_message: Callable[[ExecutorProcess, tuple[Any, ...]], None]
    on_exit: Callable[[ExecutorProcess, int | None], None]
    version: str | None = None  # the deployed version it runs (None: the worker's own code)
    python: str | None = None  # the interpreter of the version's environment (None: the worker's)
    inflight: dict[str, Inflight] = field(default_factory=dict)
    # attempts told to stop whose bodies have not ended yet (run id -> fence): the engine keeps
    # their slots taken while the heartbeat lists them
    stopping: dict[str, int] = field(default_factory=dict)
    hooks: set[str] = field(default_factory=set)
    draining: bool = False
    retired: bool = False  # stopped because its version went idle: not restarted
    tainted: bool = False
    kill_reason: str | None = None
    stall_stack: str | None = None  # of the attempt that held the event loop, if killed for it
    cpu: str = ""  # how its machine's CPU share is enforced (conveyor/worker/machines.py)
    started_at: float = 0.0
    proc: subprocess.Popen[bytes] | None = None
    channel: Channel | None = None
    ready: asyncio.Future[Loaded] | None = None
    _exited: bool = False
    _reader: asyncio.Task[None] | None = None
    _reaper: asyncio.Task[None] | None = None
    _watcher: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def key(self) -> PoolKey:
        return (self.version, self.machine)

    @property
    def load(self) -> int:
        return len(self.inflight) + len(self.hooks)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        watch_read, watch_write = os.pipe()
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        self.proc = subprocess.Popen(
            [
                self.python or sys.executable,
                "-m",
                "conveyor.worker.executor",
                "--fd",
                str(child.fileno()),
                "--root",
                str(self.root),
                "--environment",
                self.environment,
                "--machine",
                self.machine,
                "--watch-fd",
                str(watch_write),
            ],
            pass_fds=[child.fileno(), watch_write],
            cwd=self.root,
            env=env,
            start_new_session=True,
        )
        child.close()
        os.close(watch_write)
        self.started_at = time.monotonic()
        self.ready = loop.create_future()
        self._reader = loop.create_task(self._read(parent))
        self._watcher = loop.create_task(read_reports(watch_read, self._stalled))

    async def _read(self, sock: socket.socket) -> None:
        try:
            self.channel = await Channel.open(sock)
            while True:
                message = await self.channel.receive()
                if message[0] == "ready":
                    self.cpu = message[3] if len(message) > 3 else ""
                    if self.ready and not self.ready.done():
                        failures = message[4] if len(message) > 4 else []
                        self.ready.set_result(
                            Loaded(
                                [TaskDefinition.model_validate(t) for t in message[1]],
                                [ModuleFailure.model_validate(f) for f in failures],
                            )
                        )
                elif message[0] == "load_error":
                    if self.ready and not self.ready.done():
                        self.ready.set_exception(LoadFailed(message[1]))
                else:
                    self.on_message(self, message)
        except ChannelClosed:
            pass
        self._closed()

    def _closed(self) -> None:
        if self._exited:
            return
        self._exited = True
        if self.channel is not None:
            self.channel.close()
        if self.ready and not self.ready.done():
            self.ready.set_exception(LoadFailed("the executor exited while loading the task code"))
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        code = None
        if self.proc is not None:
            code = await asyncio.to_thread(self.proc.wait)
        self.on_exit(self, code)

    def _stalled(self, message: tuple[Any, ...]) -> None:
        """The watchdog's report: an attempt (`run_id`, None for other code) held the event loop
        for `seconds`. Its lines reach the run's logs; the process is killed, unless the attempt
        is past its max_duration (the supervisor kills it for that, as timed out)."""
        _, run_id, _seconds, stack, logs = message
        if logs:
            self.on_message(self, ("logs", logs))
        entry = self.inflight.get(run_id) if run_id is not None else None
        reason = decisions.stall_kill_reason(
            run_id, entry.deadline if entry else None, time.monotonic()
        )
        if reason is not None and self.kill_reason is None:
            self.stall_stack = stack
            self.kill(reason)

    def send(self, message: tuple[Any, ...]) -> bool:
        if self._exited or self.channel is None:
            return False
        try:
            self.channel.send(message)
            return True
        except ChannelClosed:
            self._closed()
            return False

    def kill(self, reason: str) -> None:
        """Stop the process now (SIGKILL to its whole session: threads and children too)."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def gone(self) -> bool:
        """The process has ended (and is reaped), or never started."""
        return self.proc is None or self.proc.poll() is not None

    def rss_bytes(self) -> int:
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    @property
    def exited(self) -> bool:
        return self._exited


class LoadFailed(Exception):
    """The task code failed to load in an executor."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
