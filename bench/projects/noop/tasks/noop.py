"""Benchmark tasks: `noop` does nothing, `stamp` returns when it started (time.time())."""

import time

from conveyor import task


@task(id="noop")
async def noop(payload):
    return None


@task(id="stamp")
async def stamp(payload):
    return {"started": time.time()}
