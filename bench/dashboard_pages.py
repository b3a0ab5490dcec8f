"""The dashboard's run list at 100,000 runs: how long a page takes to render, first, deep and
last, against the OFFSET pagination the dashboard does not use, measured on the same database.

    .venv/bin/python bench/dashboard_pages.py [--runs 100000] [--repeat 20]

Makes a SQLite database under a temporary folder with RUNS runs of one environment (batches
of 1,000 through the engine), then times, over HTTP through the app in-process (TestClient):
GET /runs (the first page), the page 1,000 pages deep and the last page (following the
keyset cursor), the newer page from there, and a page filtered by status. The peer is the
same page read with LIMIT/OFFSET straight from SQLite, which every deeper page makes slower.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.server import create_app
from conveyor.store import open_store

PAGE = 50


def timed(call: object, repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="conveyor-bench-dash-"))
    store = open_store(str(folder / "bench.db"))
    store.migrate()
    engine = Engine(store)
    env = engine.environments.ensure("proj_bench", "dev", "dev")
    engine.workers.set_tasks(
        env.id,
        [
            TaskDefinition(id=name, queue=QueueSpec(name=name), retry=RetryPolicy())
            for name in ("resize", "email", "report")
        ],
    )
    started = time.perf_counter()
    for first in range(0, args.runs, 1000):
        engine.tasks.batch_trigger(
            env.id,
            [
                (
                    ("resize", "email", "report")[i % 3],
                    {"i": i},
                    TriggerOptions(tags=["even"] if i % 2 == 0 else []),
                )
                for i in range(first, min(first + 1000, args.runs))
            ],
        )
    print(f"{args.runs:,} runs made in {time.perf_counter() - started:.1f} s")

    app = create_app(engine, rate_limit=False)
    mount_dashboard(app, engine, DashboardSettings(local_env_id=env.id))
    client = TestClient(app, base_url="http://127.0.0.1:3030", client=("127.0.0.1", 5000))
    assert client.get("/runs").status_code == 200

    # the cursors of the page 1,000 pages deep and of the last page, found by walking the keyset
    cursor, deep, last = None, None, None
    pages = 0
    while True:
        page = engine.runs.page(env.id, limit=PAGE, older_than=cursor)
        pages += 1
        if pages == min(1000, args.runs // PAGE - 1):
            deep = cursor
        if page.older is None:
            last = cursor
            break
        cursor = page.older
    db = sqlite3.connect(folder / "bench.db")

    def offset_page(number: int) -> None:
        db.execute(
            "SELECT * FROM runs WHERE env_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (env.id, PAGE, number * PAGE),
        ).fetchall()

    rows = [
        ("first page", lambda: client.get("/runs"), lambda: offset_page(0)),
        (
            f"page {min(1000, pages - 1):,}",
            lambda: client.get(f"/runs?cursor={deep}"),
            lambda: offset_page(min(1000, pages - 1) - 1),
        ),
        (
            f"last page ({pages:,})",
            lambda: client.get(f"/runs?cursor={last}"),
            lambda: offset_page(pages - 1),
        ),
        (
            "newer page from the last",
            lambda: client.get(f"/runs?before={last}"),
            lambda: offset_page(pages - 2),
        ),
        (
            "filtered: status QUEUED, tag even",
            lambda: client.get("/runs?status=QUEUED&tag=even"),
            lambda: None,
        ),
    ]
    print(
        f"\n| {args.runs:,} runs, {PAGE} per page "
        f"| dashboard page, keyset (ms, median of {args.repeat}) "
        "| the same rows by OFFSET, query only (ms) |"
    )
    print("|---|---:|---:|")
    for name, page_call, offset_call in rows:
        keyset = timed(page_call, args.repeat)
        offset = (
            timed(offset_call, args.repeat)
            if name.startswith(("first", "page", "last", "newer"))
            else None
        )
        print(f"| {name} | {keyset:.1f} | {'-' if offset is None else f'{offset:.1f}'} |")
    store.close()


if __name__ == "__main__":
    main()
