"""The Celery side of the benchmark: one app on Redis (broker and result backend) and the two
tasks Conveyor's bench project has, `noop` and `stamp`.

Settings are Celery's defaults (prefork pool, prefetch multiplier 4, acks on receipt, JSON) apart
from where Redis is; nothing is turned off to make it look slower or faster. The harness starts
the worker as `celery -A celery_app worker --pool prefork --concurrency 2` from this folder.
"""

from __future__ import annotations

import os
import time

from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="stamp")
def stamp() -> float:
    return time.time()


# -- the durable workloads (workloads.py) -----------------------------------------------------


@app.task(name="work")
def work() -> dict[str, float]:
    """100 ms of waiting, like Conveyor's `work-100ms`; returns its own start and end."""
    started = time.time()
    time.sleep(0.1)
    return {"started": started, "ended": time.time()}


@app.task(name="count_results")
def count_results(results: list[object]) -> int:
    """The chord callback: runs once every header task has a result."""
    return len(results)


# -- the fairness suite (fairness_suite.py) ---------------------------------------------------


@app.task(name="tenant_work")
def tenant_work(tenant: str, ms: float) -> dict[str, object]:
    """`ms` milliseconds of waiting for `tenant`, like Conveyor's `tenant-work`; returns its
    tenant and its own start and end."""
    started = time.time()
    time.sleep(ms / 1000)
    return {"tenant": tenant, "started": started, "ended": time.time()}
