"""A bulk cancel of many queued runs on PostgreSQL, through the engine as a server's tick does
it: how long the whole action takes, and the longest chunk (one transaction).

    .venv/bin/python bench/bulk_cancel.py [--runs 100000] [--chunk 250]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

The runs are made first (1,000 per batch, not timed), in a fresh schema dropped afterwards.
Then one bulk cancel by task is made and its chunks are handled until it completes.

Measured (one PostgreSQL on the same machine, other work on it at the same time):

    made 100,000 queued runs in 28.4s
    bulk cancel of 100,000 runs: made in 98 ms (counting them), COMPLETED after 127.6s in
    403 chunks of 250 (783 runs/s); longest chunk 535 ms
"""

from __future__ import annotations

import argparse
import secrets
import time
from urllib.parse import quote

import psycopg

from conveyor.engine import Engine
from conveyor.models import BulkFilters, QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.store import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    schema = "bench_bulk_" + secrets.token_hex(4)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{separator}options={quote(f'-csearch_path={schema}')}"
    store = open_store(url)
    try:
        store.migrate()
        engine = Engine(store)
        engine.bulk.chunk = args.chunk
        env = engine.environments.ensure("proj_bench", "dev", "dev")
        task = TaskDefinition(
            id="noop", queue=QueueSpec(name="task/noop"), retry=RetryPolicy(max_attempts=1)
        )
        engine.workers.register(env.id, "w1", "w1", [task])
        started = time.perf_counter()
        for start in range(0, args.runs, 1000):
            size = min(1000, args.runs - start)
            engine.tasks.batch_trigger(
                env.id, [("noop", {"i": i}, TriggerOptions()) for i in range(size)]
            )
        print(f"made {args.runs:,} queued runs in {time.perf_counter() - started:.1f}s", flush=True)

        started = time.perf_counter()
        action = engine.bulk.create(env.id, "cancel", BulkFilters(task="noop"))
        made = time.perf_counter() - started
        time.sleep(0.01)  # its chunks start once the clock has passed its bound
        longest = 0.0
        began = time.perf_counter()
        while True:
            chunk_started = time.perf_counter()
            more = engine.bulk.step(action.id)
            longest = max(longest, time.perf_counter() - chunk_started)
            if not more:
                break
        took = time.perf_counter() - began
        done = engine.bulk.get(env.id, action.id)
        print(
            f"bulk cancel of {done.total:,} runs: made in {made * 1000:.0f} ms (counting them), "
            f"{done.status} after {took:.1f}s in {done.chunks} chunks of {args.chunk} "
            f"({done.done / took:,.0f} runs/s); longest chunk {longest * 1000:.0f} ms"
        )
        assert done.done == args.runs, done
    finally:
        store.close()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
