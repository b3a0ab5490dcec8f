"""Wake-ups for long polls: the engine says "runs may start in environment X" from whatever
thread changed the state; workers waiting on a lease in that environment return at once.

The engine delivers other servers' changes too (LISTEN/NOTIFY on PostgreSQL), so a worker
long-polling one server wakes when a run is triggered through another.
"""

from __future__ import annotations

import asyncio
import contextlib

from conveyor.engine.engine import Engine


class Wakeups:
    def __init__(self, engine: Engine) -> None:
        self.closed = False
        self._events: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        engine.subscribe(self._on_event)

    def _on_event(self, event: str, env_id: str, run_id: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or (env_id not in self._events and env_id != "*"):
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake, env_id)

    def _wake(self, env_id: str) -> None:
        """Wake the long polls of `env_id` ("*": of every environment)."""
        waiting = [e for events in self._events.values() for e in events] if env_id == "*" else self._events.get(env_id, ())
        for event in waiting:
            event.set()

    def close(self) -> None:
        """The server is stopping: every long poll returns now, and new ones do not wait."""
        self.closed = True
        for env_id in list(self._events):
            self._wake(env_id)

    async def wait(self, env_id: str, timeout: float) -> None:
        """Return when something may have become startable in `env_id`, or after `timeout`."""
        self._loop = asyncio.get_running_loop()
        if self.closed:
            return
        event = asyncio.Event()
        self._events.setdefault(env_id, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            waiting = self._events.get(env_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[env_id]
