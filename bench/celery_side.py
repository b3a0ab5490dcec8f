"""The Celery side of the benchmark: a prefork worker with 2 processes on Redis (broker and result
backend), the same no-op throughput and trigger-to-start workloads as Conveyor's.

Runs are enqueued with `apply_async` in a loop over one shared producer (one connection for the
whole chunk), Celery's documented way to publish many messages; `group(...).apply_async()`
measured the same or slower here and adds a group result. A run counts as completed when its
result is in the backend (`celery-task-meta-<id>`, status SUCCESS); its `date_done` is when.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from processes import Service, ServiceExited, Usage, drain_rate, wait_until

BENCH_DIR = Path(__file__).resolve().parent
REDIS_URL = os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

from celery_app import app, noop, stamp  # noqa: E402 - reads BENCH_REDIS_URL


class CeleryWorker:
    """`celery worker --pool prefork --concurrency 2` on an emptied Redis database."""

    def __init__(self, log_dir: Path, concurrency: int = 2) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "--loglevel", "WARNING", "--hostname", f"bench-{os.getpid()}@%h"]
        env = dict(os.environ, BENCH_REDIS_URL=REDIS_URL)
        self.command = " ".join(["celery", *argv[3:]])
        self.service = Service("celery", argv, cwd=BENCH_DIR, log_path=log_dir / "celery-worker.log", env=env)
        self.redis = redis.Redis.from_url(REDIS_URL)

    def start(self, timeout: float = 60.0) -> None:
        self.redis.flushdb()  # the bench's own database (BENCH_REDIS_URL), fresh each run
        self.service.start()

        def answers() -> bool:
            if not self.service.alive():
                raise ServiceExited(f"celery worker exited:\n{self.service.log_tail()}")
            return bool(app.control.ping(timeout=0.5))

        wait_until(answers, timeout, interval=0.2, what="the Celery worker to answer a ping")
        # the pool processes are forked once the consumer is up; wait for both
        wait_until(lambda: len(self.service.processes()) >= 3, timeout, what="the Celery pool processes")

    def stop(self) -> None:
        self.service.stop()
        try:
            self.redis.flushdb()  # leave the bench's database empty
        except redis.RedisError:
            pass
        self.redis.close()


def _done_at(raw: bytes | str) -> tuple[str, float]:
    meta = json.loads(raw)
    return meta["status"], datetime.fromisoformat(meta["date_done"]).timestamp()


def wait_results(client: redis.Redis, ids: list[str], timeout: float, interval: float = 0.2) -> tuple[dict[str, int], list[float], float]:
    """Poll the result backend every `interval` s until every id has a result. Results arrive
    in about enqueue order, so each poll reads pending ids from the front, 1,000 at a time, and
    stops at the first chunk with any still missing."""
    pending = list(ids)
    statuses: dict[str, int] = {}
    done_at: list[float] = []
    deadline = time.monotonic() + timeout
    while pending:
        while pending:
            chunk = pending[:1000]
            values = client.mget([f"celery-task-meta-{i}" for i in chunk])
            missing = []
            for task_id, raw in zip(chunk, values, strict=True):
                if raw is None:
                    missing.append(task_id)
                    continue
                status, at = _done_at(raw)
                statuses[status] = statuses.get(status, 0) + 1
                done_at.append(at)
            pending = missing + pending[1000:]
            if missing:
                break
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} Celery tasks had no result after {timeout:g}s")
        time.sleep(interval)
    return statuses, done_at, time.time()


def throughput(worker: CeleryWorker, runs: int, batch_size: int = 1000, timeout: float = 600.0) -> dict[str, Any]:
    ids: list[str] = []
    with Usage(worker.service, redis_client=worker.redis) as usage:
        t0 = time.time()
        left = runs
        while left:
            n = min(batch_size, left)
            with app.producer_or_acquire() as producer:
                ids.extend(noop.apply_async(producer=producer).id for _ in range(n))
            left -= n
        enqueued = time.time()
        statuses, done_at, seen = wait_results(worker.redis, ids, timeout)
    last = max(done_at) if done_at else seen
    completed = statuses.get("SUCCESS", 0)
    return {
        "runs": runs, "statuses": statuses, "completed": completed,
        "done_by_enqueue_end": sum(1 for at in done_at if at <= enqueued),
        "drain_runs_per_second": drain_rate(done_at, enqueued, last),
        "t0": t0, "enqueue_seconds": enqueued - t0, "seconds": last - t0, "observed_seconds": seen - t0,
        "runs_per_second": completed / (last - t0),
        **usage.as_dict(),
    }


def latency(worker: CeleryWorker, samples: int, warmup: int = 20, gap: float = 0.02,
            timeout: float = 30.0) -> dict[str, Any]:
    """`stamp.apply_async()` then `result.get()`, one at a time; latency = the task's
    time.time() at start minus the client's time.time() just before apply_async."""
    starts: list[float] = []
    calls: list[float] = []
    with Usage(worker.service, redis_client=worker.redis) as usage:
        for i in range(warmup + samples):
            before = time.time()
            result = stamp.apply_async()
            returned = time.time()
            started = result.get(timeout=timeout)
            if i >= warmup:
                starts.append(started - before)
                calls.append(returned - before)
            time.sleep(gap)
    return {"start_latency": starts, "trigger_call": calls, **usage.as_dict()}
