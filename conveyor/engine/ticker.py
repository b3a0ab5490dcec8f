"""Time-driven changes: what happens because time passed rather than because someone asked.

Schedules fire, delayed runs that are due are queued, durations that have passed complete and
tokens past their timeout time out, runs past their ttl expire, the runs of workers that stopped
heartbeating are taken back, bulk actions handle their next chunks, and alert conditions (a
queue's backlog, an empty fleet of workers) are checked (alerts.py). The platform calls `tick`
at least once a second and again at the time it returns (the next fire time, delayed run or
duration, or at once while a bulk action has chunks left), so those happen on time; several
servers may tick the same database at once (each environment's changes happen under its lock).
"""

from __future__ import annotations

from collections.abc import Callable

from conveyor.engine.alerts import Alerts
from conveyor.engine.bulk import Bulk
from conveyor.engine.events import Events
from conveyor.engine.schedules import Schedules
from conveyor.engine.transitions import Transitions
from conveyor.engine.workers import Workers
from conveyor.models import RunStatus
from conveyor.store import Store, Tx


class Ticker:
    """Advances time (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        workers: Workers,
        schedules: Schedules,
        bulk: Bulk,
        alerts: Alerts,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._workers = workers
        self._schedules = schedules
        self._bulk = bulk
        self._alerts = alerts
        # since when this engine has had the database without a failure: a worker whose
        # heartbeats could not be recorded (the database away) is judged lost only once
        # take_back_after has passed after that
        self._database_since = self._clock()
        self._failures_seen = self._store.failures

    def tick(self) -> float | None:
        """Advance time: fire schedules, queue delayed runs that are due, complete durations that
        have passed and time out tokens, expire runs past their ttl, and take back runs of
        workers that stopped heartbeating, and handle chunks of bulk actions. Safe to call from
        several servers at once. Returns when the next of those is due by the clock (None if
        none is known).

        Workers are judged lost only once this engine has had the database for take_back_after
        without a failure: while it was away, heartbeats could not be recorded (the workers
        stopped their attempts themselves, and report the outcomes they reached once it is
        back)."""
        now = self._clock()
        envs = self._schedules.fire(now)
        take_back_after = self._workers.take_back_after
        if self._store.failures != self._failures_seen:  # an outage since the last tick
            self._failures_seen = self._store.failures
            self._database_since = now
        with self._store.read() as tx:
            due = sorted(r["env_id"] for r in tx.all("environments_with_due_work", now=now))
            judge = now - self._database_since >= take_back_after
            lost = (
                [r["id"] for r in tx.all("lost_workers", before=now - take_back_after)]
                if judge
                else []
            )
        for env_id in due:  # one transaction per environment, under its lock
            with self._store.transaction() as tx:
                tx.lock(env_id)
                envs |= self._tick_environment(tx, env_id, now)
        for worker_id in lost:
            self._workers.reclaim(
                worker_id,
                f"The worker running this attempt stopped heartbeating for {take_back_after:g}s.",
            )
        self._events.available(envs)
        self._alerts.tick(now)  # queue backlogs and empty fleets (alerts.py)
        bulk_due = self._bulk.advance()
        next_due = self._next_due()
        if next_due is None or bulk_due is None:
            return bulk_due if next_due is None else next_due
        return min(next_due, bulk_due)

    def _next_due(self) -> float | None:
        with self._store.read() as tx:
            row = tx.one("next_due_time")
        times = [t for t in (row["delayed_at"], row["wait_at"]) if t is not None] if row else []
        scheduled = self._schedules.next_due()
        if scheduled is not None:
            times.append(scheduled)
        return min(times) if times else None

    def _tick_environment(self, tx: Tx, env_id: str, now: float) -> set[str]:
        envs = {env_id} if tx.all("promote_delayed", env_id=env_id, now=now) else set()
        envs |= self._transitions.due_waitpoints(tx, env_id, now)
        for row in tx.all("expired_runs", env_id=env_id, now=now):
            envs |= self._transitions.finish(
                tx,
                row,
                RunStatus.EXPIRED,
                None,
                {
                    "name": "Expired",
                    "code": "expired",
                    "message": f"The run was not started within its ttl of {row['ttl']:g}s.",
                },
                now,
            )
        for row in tx.all("orphaned_runs", env_id=env_id):
            envs |= self._transitions.take_back(
                tx,
                row,
                "crashed",
                "WorkerLost",
                "The worker holding this attempt had stopped.",
                now,
            )
        return envs
