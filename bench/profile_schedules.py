"""The engine's tick alone with N schedules of every minute, under cProfile: where the time of
a fire goes, without the server around it (bench/schedules.py measures the server).

    .venv/bin/python bench/profile_schedules.py [--database sqlite|postgres] [--schedules 10000]
                                                [--top 25]

On a fresh SQLite file in a temporary folder, or the PostgreSQL database
bench_schedules_profile (dropped and created, dropped after), with a clock the script moves:
makes a prod environment whose task `tick` is a scheduled task, N schedules `* * * * *`, then
calls `Engine.tick()` as the server's tick loop does at the three moments of a minute's fire:
LOOKAHEAD seconds before the minute (the runs are made ahead, DELAYED), on the minute (they are
queued) and a second later (an idle tick, as the server runs ten times a second), for two
minutes in a row. Prints each tick's time, the time of its named queries, and cProfile's top
functions (--top 0: none, and the times are not slowed by the profiler).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import pg_counters  # noqa: E402

from conveyor.engine import Engine  # noqa: E402
from conveyor.engine.schedules import LOOKAHEAD  # noqa: E402
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TaskSchedule  # noqa: E402
from conveyor.store import Store, open_store  # noqa: E402

DATABASE = "bench_schedules_profile"
IDLE_TICKS = 20


class QueryTimes:
    """Time spent in each named query (`Tx.all`, `run`, `run_many` of the store's transaction
    class, wrapped; commits and the Python around the queries are not in it)."""

    def __init__(self, store: Store) -> None:
        self.spent: dict[str, list[float]] = {}
        with store.read() as tx:
            cls = type(tx)
        for method in ("all", "run", "run_many"):
            setattr(cls, method, self._timed(getattr(cls, method)))

    def _timed(self, method: Any) -> Any:
        def timed(tx: Any, query: str, *args: Any, **params: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(tx, query, *args, **params)
            finally:
                entry = self.spent.setdefault(query, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - began

        return timed

    def reset(self) -> None:
        self.spent.clear()

    def total(self) -> float:
        return sum(seconds for _, seconds in self.spent.values())

    def top(self, count: int) -> list[tuple[str, tuple[int, float]]]:
        ranked = sorted(self.spent.items(), key=lambda item: -item[1][1])[:count]
        return [(name, (int(calls), seconds)) for name, (calls, seconds) in ranked]


class Clock:
    """The engine's clock, moved by the script."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument(
        "--top", type=int, default=25, help="functions shown per tick (0: time only, no cProfile)"
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="conveyor-schedules-profile-"))
    if args.database == "postgres":
        url = pg_counters.recreate(DATABASE)
    else:
        url = str(folder / "conveyor.db")
    store = open_store(url)
    try:
        store.migrate()
        minute = (time.time() // 60 + 2) * 60
        clock = Clock(minute - 50)
        engine = Engine(store, clock=clock)
        env = engine.environments.ensure("bench", "prod", "prod")
        tick = TaskDefinition(
            id="tick",
            queue=QueueSpec(name="tick"),
            retry=RetryPolicy(),
            schedule=TaskSchedule(),
        )
        engine.workers.set_tasks(env.id, [tick])
        started = time.perf_counter()
        for _ in range(args.schedules):
            engine.schedules.create(env.id, task="tick", cron="* * * * *")
        print(
            f"{args.schedules:,} schedules on {args.database}: made in "
            f"{time.perf_counter() - started:.1f} s"
        )
        queries = QueryTimes(store)
        for label, at, repeat in (
            (f"made ahead ({LOOKAHEAD:g} s before the minute)", minute - LOOKAHEAD, 1),
            ("queued (on the minute)", minute, 1),
            (f"idle (a second later, mean of {IDLE_TICKS})", minute + 1, IDLE_TICKS),
            ("made ahead, the next minute (its runs QUEUED meanwhile)", minute + 60 - LOOKAHEAD, 1),
            ("queued, the next minute", minute + 60, 1),
            (f"idle, the next minute (mean of {IDLE_TICKS})", minute + 61, IDLE_TICKS),
        ):
            clock.now = at
            queries.reset()
            profile = cProfile.Profile()
            began = time.perf_counter()
            if args.top:
                profile.enable()
            for _ in range(repeat):
                engine.tick()
            profile.disable()
            took = (time.perf_counter() - began) / repeat
            spent = queries.total() / repeat
            print(
                f"\n== tick {label}: {took * 1000:,.1f} ms"
                + (f" ({took / args.schedules * 1e6:.0f} us per schedule)" if took > 0.05 else "")
                + f"; in named queries {spent * 1000:,.1f} ms"
            )
            for name, (calls, seconds) in queries.top(8):
                print(f"   {seconds / repeat * 1000:9.1f} ms  {calls // repeat:7,} x  {name}")
            if not args.top:
                continue
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            print("\n".join(out.getvalue().splitlines()[4:]))
    finally:
        store.close()
        if args.database == "postgres":
            pg_counters.drop(DATABASE)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
