"""A task for the many-servers, many-workers tests: it records where and when it ran."""

import asyncio
import os
import time
from pathlib import Path

from conveyor import queue, task

EXECUTIONS = Path(__file__).resolve().parent.parent / "executions.log"
STARTS = Path(__file__).resolve().parent.parent / "starts.log"

four = queue("four", concurrency_limit=4)


@task(id="fleet", queue=four, retry={"max_attempts": 5, "min_timeout_ms": 100, "randomize": False})
async def fleet(payload, ctx):
    """One line per execution: run, attempt, worker, start and end of the body."""
    started = time.time()
    with STARTS.open("a") as f:
        f.write(f"{ctx.run.id} {ctx.attempt.number} {started:.6f}\n")
    await asyncio.sleep(payload.get("seconds", 0.01))
    line = (
        f"{ctx.run.id} {ctx.attempt.number} {os.environ.get('FLEET_WORKER', '?')} "
        f"{started:.6f} {time.time():.6f}\n"
    )
    with EXECUTIONS.open("a") as f:
        f.write(line)
    return {"worker": os.environ.get("FLEET_WORKER")}
