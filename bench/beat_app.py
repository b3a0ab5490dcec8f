"""The Celery side of the schedules benchmark: an app on Redis whose `beat_schedule` holds
BENCH_BEAT_SCHEDULES entries (10,000 by default), each `crontab(minute="*")` sending the task
`tick` with its own index as its only argument, so every message names the entry that sent it.

The harness runs `celery -A beat_app beat` from this folder with no worker: the messages stay
in Redis's list `celery`, where they are counted as they arrive. Settings are Celery's defaults
(the persistent scheduler on a shelve file, UTC) apart from where Redis is.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

REDIS_URL = os.environ.get("BENCH_BEAT_REDIS_URL", "redis://127.0.0.1:6379/14")
SCHEDULES = int(os.environ.get("BENCH_BEAT_SCHEDULES", "10000"))

app = Celery("bench-beat", broker=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    beat_schedule={
        f"tick-{index}": {"task": "tick", "schedule": crontab(minute="*"), "args": (index,)}
        for index in range(SCHEDULES)
    },
)


@app.task(name="tick")
def tick(index: int) -> None:
    return None
