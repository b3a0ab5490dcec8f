"""What the engine tells those who watch its work, once each change has committed: a run started
(and how long it waited to), a run ended (its status, how long since it first started), a lease
took so long. The server's metrics (conveyor/server/metrics.py) listen; the engine knows nothing
of them, and a change tried again after a conflict is told once.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("conveyor.engine")


class Observer(Protocol):
    def run_started(self, env_id: str, queue: str, waited: float) -> None:
        """An attempt of a run started (or resumed) `waited` seconds after it could have."""

    def run_finished(self, env_id: str, task_id: str, status: str, seconds: float | None) -> None:
        """A run ended with `status`, `seconds` after it first started (None: it never did)."""

    def leased(self, env_id: str, seconds: float, started: int) -> None:
        """A worker's lease took `seconds` and started `started` attempts."""


class Observers:
    """The engine's observers, each told every event; one that raises is logged and skipped."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def remove(self, observer: Observer) -> None:
        self._observers.remove(observer)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def run_started(self, env_id: str, queue: str, waited: float) -> None:
        for observer in self._observers:
            try:
                observer.run_started(env_id, queue, waited)
            except Exception:
                log.exception("an observer of run starts failed")

    def run_finished(self, env_id: str, task_id: str, status: str, seconds: float | None) -> None:
        for observer in self._observers:
            try:
                observer.run_finished(env_id, task_id, status, seconds)
            except Exception:
                log.exception("an observer of run ends failed")

    def leased(self, env_id: str, seconds: float, started: int) -> None:
        for observer in self._observers:
            try:
                observer.leased(env_id, seconds, started)
            except Exception:
                log.exception("an observer of leases failed")
