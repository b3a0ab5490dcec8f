"""The engine's event bus: "available" (runs may start in an environment), "stop" (a worker
must stop a run), "changed" (runs changed: their status, metadata or tags; the id field holds
their ids, comma-separated) and "stream" (a run's stream grew), told to the listeners of this
process and published through the store to the engines of other processes on the same database.

It carries wake-ups only, never state: a listener reads what changed from the store. It must
never be called inside a transaction (a listener would see the state before the commit).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from conveyor.store import Store

Listener = Callable[[str, str, str | None], None]
CHANGED_BATCH = 150  # run ids per "changed" message


class Events:
    """Subscribe to, and emit, the engine's events (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listeners: list[Listener] = []
        self._origin = secrets.token_hex(6)  # tells this engine's published events from others'

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(event, env_id, run_id)` on "available" (runs may start) and "stop"
        (a worker must stop a run), whichever server's engine made the change: events of
        other processes on the same database arrive through the store (LISTEN/NOTIFY), and
        after a lost database connection an "available" for every environment ("*")."""
        if not self._listeners:
            self._store.listen(self._on_published)
        self._listeners.append(listener)

    def emit(self, event: str, env_id: str, run_id: str | None = None) -> None:
        self._dispatch(event, env_id, run_id)
        self._store.publish(f"{self._origin} {event} {env_id} {run_id or ''}")

    def changed(self, env_id: str, run_ids: list[str] | set[str]) -> None:
        """Runs of `env_id` changed (for live subscribers), in messages of up to CHANGED_BATCH
        ids (a NOTIFY payload is at most 8000 bytes)."""
        ids = sorted(set(run_ids))
        for start in range(0, len(ids), CHANGED_BATCH):
            self.emit("changed", env_id, ",".join(ids[start : start + CHANGED_BATCH]))

    def available(self, envs: set[str] | list[str]) -> None:
        """Runs may start in each of `envs`."""
        for env_id in envs:
            self.emit("available", env_id)

    def _dispatch(self, event: str, env_id: str, run_id: str | None) -> None:
        for listener in self._listeners:
            listener(event, env_id, run_id)

    def _on_published(self, message: str) -> None:
        if not message:  # the connection was lost meanwhile: anything may have changed
            self._dispatch("available", "*", None)
            return
        origin, event, env_id, run_id = [*message.split(" "), "", "", ""][:4]
        if origin != self._origin:  # our own changes were dispatched when they were made
            self._dispatch(event, env_id, run_id or None)
