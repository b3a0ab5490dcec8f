"""Benchmark tasks: `noop` does nothing, `stamp` returns when it started (time.time())."""

import time
from typing import Any

from conveyor import task


@task(id="noop")
async def noop(payload: Any) -> None:
    return None


@task(id="stamp")
async def stamp(payload: Any) -> dict[str, float]:
    return {"started": time.time()}
