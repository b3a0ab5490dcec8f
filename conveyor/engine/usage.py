"""`engine.usage`: the compute an environment's runs used in a period. An attempt's compute
seconds are the time it held a slot (from each start or resume to its end or suspension, waits
that suspended it excluded), recorded when it ends (transitions.py); a period counts the
attempts that ended in it, per task and machine preset."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from conveyor.models import TaskUsage, Usage
from conveyor.store import Store

DEFAULT_PERIOD = 30 * 86400.0  # without `since`: the last 30 days
LAST_MOMENT = 253402300799.0  # 9999-12-31T23:59:59Z


class UsageReader:
    """Reads usage (see the module docstring)."""

    def __init__(self, store: Store, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def period(self, env_id: str, since: float | None = None, until: float | None = None) -> Usage:
        """The usage of the attempts that ended from `since` (default: 30 days before `until`)
        to `until` (default: now)."""
        end = self._clock() if until is None else until
        start = end - DEFAULT_PERIOD if since is None else since
        # the times a period can say: from 1970 to the end of year 9999
        start, end = (min(max(t, 0.0), LAST_MOMENT) for t in (start, end))
        # a `since` after `until` is an empty period, as a list of runs between them is
        with self._store.read() as tx:
            rows = tx.all("usage_by_task", env_id=env_id, since=start, until=end)
            counted = tx.one("usage_runs", env_id=env_id, since=start, until=end)
        tasks = [
            TaskUsage(
                task_id=r["task_id"],
                machine=r["machine"],
                compute_seconds=float(r["compute_seconds"] or 0.0),
                attempts=int(r["attempts"]),
                runs=int(r["runs"]),
            )
            for r in rows
        ]
        return Usage(
            since=datetime.fromtimestamp(start, tz=UTC),
            until=datetime.fromtimestamp(end, tz=UTC),
            compute_seconds=sum(t.compute_seconds for t in tasks),
            attempts=sum(t.attempts for t in tasks),
            runs=int(counted["runs"]) if counted else 0,
            tasks=tasks,
        )
