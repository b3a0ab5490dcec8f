"""Tasks of the durable workloads.

`fan-parent` waits durably for `n` no-op children (one batch_trigger_and_wait call per 1,000);
`limited-parent` for `n` children of 100 ms each in the queue `five` (concurrency limit 5);
`durable-sleep` suspends for `seconds` (WAITING: no process, no slot) and then ends.
"""

import asyncio
import time
from typing import Any

from conveyor import queue, task, wait

five = queue("five", concurrency_limit=5)
BATCH = 1000  # batch_trigger_and_wait takes at most 1,000 items per call


@task(id="noop")
async def noop(payload: Any) -> None:
    return None


@task(id="fan-parent")
async def fan_parent(payload: dict[str, int]) -> int:
    n = payload["n"]
    ok = 0
    for start in range(0, n, BATCH):
        results = await noop.batch_trigger_and_wait([{"payload": {}}] * min(BATCH, n - start))
        ok += sum(1 for r in results.runs if r.ok)
    return ok


@task(id="work-100ms", queue=five)
async def work(payload: Any) -> dict[str, float]:
    started = time.time()
    await asyncio.sleep(0.1)
    return {"started": started, "ended": time.time()}


@task(id="limited-parent")
async def limited_parent(payload: dict[str, int]) -> int:
    results = await work.batch_trigger_and_wait([{"payload": {}}] * payload["n"])
    return sum(1 for r in results.runs if r.ok)


@task(id="durable-sleep")
async def durable_sleep(payload: dict[str, float]) -> None:
    await wait.for_(seconds=payload["seconds"])
