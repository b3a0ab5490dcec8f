"""The engine's lease alone behind a backlog, as the fairness suite drives it: what one lease
costs as the queued runs and the concurrency keys grow, query by query.

    .venv/bin/python bench/profile_lease.py [--leases 100] [--plans]

On a fresh SQLite file in a temp folder, for each case: queue the runs (batch_trigger, 1,000 per
call) in the queue `fair` (concurrency_limit 4 per key) of an environment with
`concurrency_limit` 4, then lease (the dev worker's capacity, 500, unless the case says) and
complete what each lease gave, `--leases` times. Prints the time per lease and per query name
(the store's calls timed from outside); `--plans` prints SQLite's plan of the lease's queries
with the largest backlog.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import conveyor.store.sqlite as sqlite_store
from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import AttemptOutcome
from conveyor.store import open_store
from conveyor.store.queries import bind, get_query

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fairness_metrics import demands_for

SECONDS: Counter[str] = Counter()
CALLS: Counter[str] = Counter()


def _timed(method: Any) -> Any:
    def wrapper(self: Any, query: str, /, **params: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(self, query, **params)
        finally:
            SECONDS[query] += time.perf_counter() - start
            CALLS[query] += 1

    return wrapper


sqlite_store._SqliteTx.all = _timed(sqlite_store._SqliteTx.all)  # type: ignore[method-assign]
sqlite_store._SqliteTx.run = _timed(sqlite_store._SqliteTx.run)  # type: ignore[method-assign]


def case(
    name: str, demands: dict[str | None, int], leases: int, capacity: int = 500
) -> tuple[Engine, str, Path]:
    folder = Path(tempfile.mkdtemp(prefix="conveyor-lease-profile-"))
    store = open_store(str(folder / "dev.db"))
    store.migrate()
    engine = Engine(store)
    env = engine.environments.ensure("bench", "dev", "dev")
    engine.environments.set_limit(env.id, 4)
    task = TaskDefinition(
        id="tenant-work",
        queue=QueueSpec(name="fair", concurrency_limit=4),
        retry=RetryPolicy(max_attempts=1),
    )
    engine.workers.register(env.id, "wrk_bench", "bench", [task])
    for key, n in demands.items():
        options = TriggerOptions(concurrency_key=key)
        for start in range(0, n, 1000):
            engine.tasks.batch_trigger(
                env.id, [("tenant-work", {}, options)] * min(1000, n - start)
            )
    SECONDS.clear()
    CALLS.clear()
    took, started = 0.0, 0
    for _ in range(leases):
        begin = time.perf_counter()
        reply = engine.workers.lease(env.id, "wrk_bench", capacity)
        took += time.perf_counter() - begin
        if not reply.attempts:
            break
        started += len(reply.attempts)
        engine.workers.complete(
            "wrk_bench",
            [
                AttemptOutcome(a.run_id, a.attempt, "completed", output_json="null", fence=a.fence)
                for a in reply.attempts
            ],
        )
    print(
        f"{name}: {leases} leases, {started} runs started, {took / leases * 1000:.1f} ms per "
        f"lease (capacity {capacity})"
    )
    for query, seconds in SECONDS.most_common(6):
        print(
            f"    {query:28s} {seconds / CALLS[query] * 1000:7.2f} ms x {CALLS[query] / leases:.1f}"
        )
    return engine, env.id, folder / "dev.db"


def plans(path: Path, env_id: str) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    now = time.time()
    queries = {
        "queued_key_heads": {"env_id": env_id, "queue": "fair", "now": now},
        "queued_candidates_of_key": {
            "env_id": env_id,
            "queue": "fair",
            "now": now,
            "key": "big",
            "limit": 4,
        },
        "executing_counts": {"env_id": env_id},
        "lease_hooks": {"env_id": env_id, "now": now, "until": now + 30, "limit": 50},
    }
    for query, params in queries.items():
        sql, values = bind(get_query(query, "sqlite"), params, "named")
        print(f"  {query}:")
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values):
            print(f"      {row[3]}")
        conn.rollback()
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leases", type=int, default=100)
    parser.add_argument("--plans", action="store_true")
    args = parser.parse_args(argv)
    tenants: dict[str | None, int] = dict(demands_for(100, [100, 30, 10, 3, 1]))
    case("1,000 runs, no key", {None: 1000}, args.leases)
    case("1,000 runs, one key", {"big": 1000}, args.leases)
    case("10,000 runs, no key", {None: 10_000}, args.leases)
    _, env_id, path = case("10,000 runs, one key", {"big": 10_000}, args.leases)
    case("2,880 runs, 100 keys", tenants, args.leases)
    case("2,880 runs, 100 keys", tenants, args.leases, capacity=4)
    if args.plans:
        print("SQLite's plans (10,000 runs of one key):")
        plans(path, env_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
