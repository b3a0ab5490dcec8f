"""Queues: their limits (from the code, or an override), pausing and resuming, and what each
holds. The routes of conveyor/server/api/queues.py and the client's `queues` namespace are this
part. A task's definition declares its queue (tasks.py); leasing counts the slots (workers.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from conveyor.engine.events import Events
from conveyor.errors import NotFound
from conveyor.models import QueueInfo, RateLimit
from conveyor.store import Store


class Queues:
    """The queues of an environment (see the module docstring)."""

    def __init__(
        self, store: Store, *, events: Events, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock

    def get(self, env_id: str, name: str) -> QueueInfo:
        for queue in self.list(env_id):
            if queue.name == name:
                return queue
        raise NotFound(f"queue {name!r} not found")

    def set_paused(self, env_id: str, name: str, paused: bool) -> QueueInfo:
        with self._store.transaction() as tx:
            if not tx.run("set_queue_paused", env_id=env_id, name=name, paused=1 if paused else 0):
                raise NotFound(f"queue {name!r} not found")
        if not paused:
            self._events.emit("available", env_id)
        return self.get(env_id, name)

    def set_limit(self, env_id: str, name: str, limit: int | None) -> QueueInfo:
        """Override a queue's limit (None clears the override, so the code's limit applies
        again)."""
        with self._store.transaction() as tx:
            if not tx.run("set_queue_override", env_id=env_id, name=name, override_limit=limit):
                raise NotFound(f"queue {name!r} not found")
        self._events.emit("available", env_id)
        return self.get(env_id, name)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, env_id: str) -> list[QueueInfo]:
        with self._store.read() as tx:
            rows = tx.all("list_queues", env_id=env_id, now=self._clock())
        return [
            QueueInfo(
                name=r["name"],
                concurrency_limit=r["concurrency_limit"],
                code_limit=r["code_limit"],
                override_limit=r["override_limit"],
                paused=bool(r["paused"]),
                running=r["running"],
                queued=r["queued"],
                rate_limit=(
                    RateLimit(limit=r["rate_limit"], period=r["rate_period"])
                    if r["rate_limit"] is not None
                    else None
                ),
                rate_used=r["rate_used"] if r["rate_limit"] is not None else 0,
                weights=json.loads(r["weights"]) if r["weights"] else None,
            )
            for r in rows
        ]
