"""The Procrastinate app of the postgres suite: the same two tasks as Conveyor's projects/noop.

    python -m procrastinate --app procrastinate_app.app worker --concurrency N   (cwd: bench/)

The database is BENCH_PROCRASTINATE_URL (set by procrastinate_side.py). Procrastinate keeps no
task results, so `stamp` writes its own time.time() at start to a file named after its job id in
BENCH_STAMP_DIR, where the harness reads it once the job has succeeded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from procrastinate import App, JobContext, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_URL", "")))


@app.task(name="noop")
async def noop() -> None:
    return None


@app.task(name="stamp", pass_context=True)
async def stamp(context: JobContext) -> None:
    started = time.time()
    assert context.job is not None
    Path(os.environ["BENCH_STAMP_DIR"], str(context.job.id)).write_text(repr(started))
