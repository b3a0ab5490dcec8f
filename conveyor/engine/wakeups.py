"""Wake-ups for long polls: the engine says "runs may start in environment X" from whatever
thread changed the state; workers waiting on a lease in that environment return at once, and
the dashboard's live parts render again. One per app, made by `create_app` (app.state.wakeups).

The engine delivers other servers' changes too (LISTEN/NOTIFY on PostgreSQL), so a worker
long-polling one server wakes when a run is triggered through another; after the store lost
its notification connection it wakes every waiter ("*"), as anything may have changed.

No wake-up is lost: a waiter registers before it reads the state it waits on, and keeps its
registration across reads, so a change committed after a read wakes its next wait:

    with wakeups.listen(env_id) as waiter:
        while not (state := read()):
            await waiter.wait(timeout)

What a waiter listens to is a key: an environment id (runs may start there, or a run must stop:
long polls), `changes(env_id)` (any run of it changed: subscribers to a tag or batch), a run id
(that run changed: its subscribers), `stream_key(run_id)` (the run's streams grew).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from conveyor.engine.facade import Engine


class Waiter:
    """One registration on an environment's wake-ups; a wake-up that came while the waiter was
    reading is kept until its next `wait`."""

    def __init__(self, wakeups: Wakeups) -> None:
        self._wakeups = wakeups
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when something may have changed since the last wait (or the registration),
        or after `timeout`."""
        if not self._wakeups.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()  # a wake-up after this reaches the next wait


class Wakeups:
    def __init__(self, engine: Engine) -> None:
        self.closed = False
        self._events: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        engine.events.subscribe(self._on_event)

    def _on_event(self, event: str, env_id: str, ids: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not self._events:
            return
        if event == "changed":
            keys = [changes(env_id), *(ids.split(",") if ids else ())]
        elif event == "stream":
            keys = [changes(env_id), stream_key(ids or "")]
        else:  # "available", "stop"
            keys = [env_id, changes(env_id)]
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake, "*" if env_id == "*" else keys)

    def _wake(self, keys: str | list[str]) -> None:
        """Wake the waiters of `keys` ("*": every waiter)."""
        if keys == "*":
            waiting = [e for events in self._events.values() for e in events]
        else:
            waiting = [e for key in keys for e in self._events.get(key, ())]
        for event in waiting:
            event.set()

    def close(self) -> None:
        """The server is stopping: every long poll returns now, and new ones do not wait."""
        self.closed = True
        self._wake("*")

    @contextlib.contextmanager
    def listen(self, *keys: str) -> Iterator[Waiter]:
        """Register for the wake-ups of `keys` (an environment id for its long polls, see the
        module docstring) on the running event loop, before reading the state."""
        self._loop = asyncio.get_running_loop()
        waiter = Waiter(self)
        for key in keys:
            self._events.setdefault(key, set()).add(waiter._event)
        try:
            yield waiter
        finally:
            for key in keys:
                waiting = self._events.get(key)
                if waiting is not None:
                    waiting.discard(waiter._event)
                    if not waiting:
                        del self._events[key]


def changes(env_id: str) -> str:
    """The key of every change to the runs of `env_id`."""
    return f"changes:{env_id}"


def stream_key(run_id: str) -> str:
    """The key of a run's streams."""
    return f"stream:{run_id}"
