"""Tasks for the flow-control tests of a fleet (tests/e2e/test_flow_control_fleet.py): debounce,
rate limits and the turns of concurrency keys.

Every body appends JSON lines to flow.log in the project folder: `start` (with its task, payload,
concurrency key and the worker that runs it, FLEET_WORKER), a `tick` every 0.1 s while it runs,
and `end`. Each line has the run, the attempt, an id of this execution and the wall clock, so a
test reads from the history when each body started, how long it was seen running, and whether it
finished."""

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

from conveyor import queue, task

LOG = Path(__file__).resolve().parent.parent / "flow.log"

RETRY = {"max_attempts": 5, "min_timeout_ms": 100, "randomize": False}

# a limit high enough not to bind: only the rate limit holds runs back
rated = queue("flow-rated", concurrency_limit=50, rate_limit={"limit": 3, "period": "2s"})
# no limit of their own (a concurrency limit is each key's, so it would not make keys compete):
# the keys compete for the workers' capacity
fair = queue("flow-fair")
weighted = queue("flow-weighted", weights={"a": 3, "b": 1})


def note(kind: str, ctx, execution: str, **fields) -> None:
    line = {
        "k": kind,
        "run": ctx.run.id,
        "attempt": ctx.attempt.number,
        "x": execution,
        "at": time.time(),
        **fields,
    }
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())  # one write: lines never interleave
    finally:
        os.close(fd)


async def body(payload, ctx) -> dict:
    execution = uuid.uuid4().hex
    note(
        "start",
        ctx,
        execution,
        task=ctx.task.id,
        key=ctx.run.concurrency_key,
        worker=os.environ.get("FLEET_WORKER", "?"),
        payload=payload,
    )
    seconds = payload.get("seconds", 0) if isinstance(payload, dict) else 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.1, left))
        note("tick", ctx, execution)
    note("end", ctx, execution)
    return {"worker": os.environ.get("FLEET_WORKER")}


@task(id="flow-debounced", retry=RETRY)
async def flow_debounced(payload, ctx):
    return await body(payload, ctx)


@task(id="flow-rated", queue=rated, retry=RETRY)
async def flow_rated(payload, ctx):
    return await body(payload, ctx)


@task(id="flow-fair", queue=fair, retry=RETRY)
async def flow_fair(payload, ctx):
    return await body(payload, ctx)


@task(id="flow-weighted", queue=weighted, retry=RETRY)
async def flow_weighted(payload, ctx):
    return await body(payload, ctx)
