"""The task of the fairness suite: `tenant-work` waits `ms` milliseconds in the queue `fair` and
returns its own start and end (time.time()). Runs are triggered with the tenant as their
concurrency key; the environment's limit (pyproject.toml) gives every tenant together 4 slots.
"""

import asyncio
import time
from typing import Any

from conveyor import queue, task

# the queue's limit counts per concurrency key; the 4 slots all tenants share are the
# environment's concurrency_limit
fair = queue("fair", concurrency_limit=4)


@task(id="tenant-work", queue=fair)
async def tenant_work(payload: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    await asyncio.sleep(payload["ms"] / 1000)
    return {"tenant": payload["tenant"], "started": started, "ended": time.time()}
