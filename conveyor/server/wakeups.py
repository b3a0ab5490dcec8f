"""Wake-ups for long polls: the engine says "runs may start in environment X" from whatever
thread changed the state; workers waiting on a lease in that environment return at once.

Only for the server's own process: a worker long-polling another server of the same database
wakes at its poll's end at the latest (LISTEN/NOTIFY carries wake-ups across servers on
PostgreSQL).
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
        if loop is None or loop.is_closed() or env_id not in self._events:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake, env_id)

    def _wake(self, env_id: str) -> None:
        for event in self._events.get(env_id, ()):
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
