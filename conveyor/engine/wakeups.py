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

    def _on_event(self, event: str, env_id: str, run_id: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or (env_id not in self._events and env_id != "*"):
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake, env_id)

    def _wake(self, env_id: str) -> None:
        """Wake the long polls of `env_id` ("*": of every environment)."""
        waiting = (
            [e for events in self._events.values() for e in events]
            if env_id == "*"
            else self._events.get(env_id, ())
        )
        for event in waiting:
            event.set()

    def close(self) -> None:
        """The server is stopping: every long poll returns now, and new ones do not wait."""
        self.closed = True
        for env_id in list(self._events):
            self._wake(env_id)

    @contextlib.contextmanager
    def listen(self, env_id: str) -> Iterator[Waiter]:
        """Register for `env_id`'s wake-ups (on the running event loop) before reading its state."""
        self._loop = asyncio.get_running_loop()
        waiter = Waiter(self)
        self._events.setdefault(env_id, set()).add(waiter._event)
        try:
            yield waiter
        finally:
            waiting = self._events.get(env_id)
            if waiting is not None:
                waiting.discard(waiter._event)
                if not waiting:
                    del self._events[env_id]
