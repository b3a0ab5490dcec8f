"""The engine alone under the no-op workload, with cProfile: what each step of a run costs
without HTTP, uvicorn or executors in the way.

    .venv/bin/python bench/profile_engine.py [--runs 10000] [--top 25]

Same steps as `conveyor dev` takes for the throughput workload, on a fresh SQLite file in a temp
folder: batch_trigger (1,000 per call), lease (the supervisor's capacity, 500), complete (the
outcomes of one lease at a time). Prints the time per step and per run, then cProfile's top
functions for each step.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import AttemptOutcome
from conveyor.store import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--capacity", type=int, default=500, help="runs per lease (conveyor dev: 500)"
    )
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="conveyor-engine-profile-"))
    store = open_store(str(folder / "dev.db"))
    store.migrate()
    engine = Engine(store)
    env = engine.environments.ensure("bench", "dev", "dev")
    task = TaskDefinition(
        id="noop", queue=QueueSpec(name="task/noop"), retry=RetryPolicy(max_attempts=1)
    )
    engine.workers.register(env.id, "wrk_bench", "bench", [task])

    profiles = {name: cProfile.Profile() for name in ("batch_trigger", "lease", "complete")}
    seconds = dict.fromkeys(profiles, 0.0)

    def timed(name: str, fn, *a, **kw):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        profiles[name].enable()
        try:
            return fn(*a, **kw)
        finally:
            profiles[name].disable()
            seconds[name] += time.perf_counter() - start

    left = args.runs
    while left:
        n = min(1000, left)
        timed(
            "batch_trigger",
            engine.tasks.batch_trigger,
            env.id,
            [("noop", {}, TriggerOptions())] * n,
        )
        left -= n
    done = 0
    for _ in range(args.runs):  # bounded: at least one run per lease
        reply = timed("lease", engine.workers.lease, env.id, "wrk_bench", args.capacity)
        if not reply.attempts:
            break
        outcomes = [
            AttemptOutcome(a.run_id, a.attempt, "completed", output_json="null", fence=a.fence)
            for a in reply.attempts
        ]
        timed("complete", engine.workers.complete, "wrk_bench", outcomes)
        done += len(outcomes)
    store.close()

    total = sum(seconds.values())
    print(
        f"{done} runs through the engine in {total:.2f} s "
        f"({done / total:.0f} runs/s, engine only, one thread)"
    )
    for name, s in seconds.items():
        print(f"  {name:14s} {s:6.2f} s  {s / max(done, 1) * 1e6:7.1f} µs per run")
    for name, profile in profiles.items():
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"\n=== {name}: top {args.top} by own time ===")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
