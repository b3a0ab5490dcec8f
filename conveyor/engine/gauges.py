"""`engine.gauges`: what is true of the whole platform at one moment, read for the server's
metrics when they are scraped (conveyor/server/metrics.py): the runs that have not ended by
status, each queue's depth and its executing runs, the live workers. Read from the database, so
every server reports the same figures, whichever of them made the runs.

Ended runs are not counted here (their table only grows): each server counts the runs it ends
(conveyor/engine/observers.py), and a scrape sums the servers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from conveyor.store import Store


@dataclass(frozen=True, slots=True)
class EnvironmentGauges:
    project: str
    environment: str
    runs: dict[tuple[str, str], int]  # (task, status): runs that have not ended
    queued: dict[str, int]  # queue: its QUEUED runs
    executing: dict[str, int]  # queue: its EXECUTING runs
    limits: dict[str, int | None]  # queue: the concurrency limit in force
    paused: dict[str, bool]
    workers: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    environments: list[EnvironmentGauges] = field(default_factory=list)


class Gauges:
    """Reads the platform's gauges (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def read(self) -> Snapshot:
        """One read snapshot of every environment's gauges."""
        snapshot = Snapshot()
        with self._store.read() as tx:
            workers = {r["env_id"]: r["n"] for r in tx.all("gauge_workers")}
            for env in tx.all("gauge_environments"):
                runs: dict[tuple[str, str], int] = defaultdict(int)
                queued: dict[str, int] = defaultdict(int)
                executing: dict[str, int] = defaultdict(int)
                for row in tx.all("gauge_runs", env_id=env["id"]):
                    runs[(row["task_id"], row["status"])] += row["n"]
                    if row["status"] == "QUEUED":
                        queued[row["queue"]] += row["n"]
                    elif row["status"] == "EXECUTING":
                        executing[row["queue"]] += row["n"]
                queues = tx.all("gauge_queues", env_id=env["id"])
                snapshot.environments.append(
                    EnvironmentGauges(
                        project=env["project"],
                        environment=env["slug"],
                        runs=dict(runs),
                        queued={q["name"]: queued.get(q["name"], 0) for q in queues},
                        executing={q["name"]: executing.get(q["name"], 0) for q in queues},
                        limits={q["name"]: q["concurrency_limit"] for q in queues},
                        paused={q["name"]: bool(q["paused"]) for q in queues},
                        workers=workers.get(env["id"], 0),
                    )
                )
        return snapshot
