"""The Celery side of the benchmark: a prefork worker with 2 processes on Redis (broker and result
backend), the same no-op throughput and trigger-to-start workloads as Conveyor's.

Runs are enqueued with `apply_async` in a loop over one shared producer (one connection for the
whole chunk), Celery's documented way to publish many messages; `group(...).apply_async()`
measured the same or slower here and adds a group result. A run counts as completed when its
result is in the backend (`celery-task-meta-<id>`, status SUCCESS); its `date_done` is when.
"""

from __future__ import annotations

import gc
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

from celery_app import app, count_results, noop, stamp, work  # noqa: E402 - reads BENCH_REDIS_URL


class CeleryWorker:
    """`celery worker --pool prefork --concurrency 2` on an emptied Redis database."""

    def __init__(
        self,
        log_dir: Path,
        concurrency: int = 2,
        queues: str | None = None,
        log_name: str = "celery-worker",
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench-{os.getpid()}@%h",
            *(["--queues", queues] if queues else []),
        ]
        env = dict(os.environ, BENCH_REDIS_URL=REDIS_URL)
        self.concurrency = concurrency
        self.command = " ".join(["celery", *argv[3:]])
        self.service = Service(
            "celery", argv, cwd=BENCH_DIR, log_path=log_dir / f"{log_name}.log", env=env
        )
        self.redis = redis.Redis.from_url(REDIS_URL)

    def start(self, timeout: float = 60.0, flush: bool = True) -> None:
        """Start the worker and wait until it answers; `flush=False` keeps what the database
        holds (a backlog queued before the worker, as the fairness suite does)."""
        if flush:
            self.redis.flushdb()  # the bench's own database (BENCH_REDIS_URL), fresh each run
        self.service.start()

        def answers() -> bool:
            if not self.service.alive():
                raise ServiceExited(f"celery worker exited:\n{self.service.log_tail()}")
            return bool(app.control.ping(timeout=0.5))

        wait_until(answers, timeout, interval=0.2, what="the Celery worker to answer a ping")
        # the pool processes are forked once the consumer is up; wait for both
        wait_until(
            lambda: len(self.service.processes()) >= 1 + self.concurrency,
            timeout,
            what="the Celery pool processes",
        )

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


def wait_results(
    client: redis.Redis, ids: list[str], timeout: float, interval: float = 0.2
) -> tuple[dict[str, int], list[float], float]:
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


def throughput(
    worker: CeleryWorker, runs: int, batch_size: int = 1000, timeout: float = 600.0
) -> dict[str, Any]:
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
        "runs": runs,
        "statuses": statuses,
        "completed": completed,
        "done_by_enqueue_end": sum(1 for at in done_at if at <= enqueued),
        "drain_runs_per_second": drain_rate(done_at, enqueued, last),
        "t0": t0,
        "enqueue_seconds": enqueued - t0,
        "seconds": last - t0,
        "observed_seconds": seen - t0,
        "runs_per_second": completed / (last - t0),
        **usage.as_dict(),
    }


def latency(
    worker: CeleryWorker, samples: int, warmup: int = 20, gap: float = 0.02, timeout: float = 30.0
) -> dict[str, Any]:
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


# -- the durable workloads (workloads.py) ----------------------------------------------------
# Celery has no durable parent that waits: a chord (a group of tasks plus a callback that runs
# once all of them have a result) is the closest. The client publishes it; "the parent
# completed" is the callback's result in the backend (its date_done).


def _meta(client: redis.Redis, ids: list[str]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for start in range(0, len(ids), 1000):
        values = client.mget([f"celery-task-meta-{i}" for i in ids[start : start + 1000]])
        out.extend(json.loads(v) if v is not None else None for v in values)
    return out


def _wait_one(
    client: redis.Redis, task_id: str, timeout: float, interval: float = 0.05
) -> dict[str, Any]:
    """Poll the backend for one result every `interval` s (as Conveyor's
    runs.poll(interval=0.05))."""

    def ready() -> dict[str, Any] | None:
        raw = client.get(f"celery-task-meta-{task_id}")
        return json.loads(raw) if raw is not None else None

    meta: dict[str, Any] = wait_until(
        ready, timeout, interval=interval, what=f"Celery result {task_id}"
    )
    return meta


def _chord(
    worker: CeleryWorker, header: list[Any], timeout: float
) -> tuple[dict[str, Any], list[dict[str, Any] | None], float, float]:
    from celery import chord

    t0 = time.time()
    result = chord(header)(count_results.s())
    meta = _wait_one(worker.redis, result.id, timeout)
    seen = time.time()
    children = _meta(worker.redis, [r.id for r in result.parent.results])
    # the results are registered with the backend, to be told when they are ready (a Redis
    # subscription): unregister and free them now, not at interpreter exit, when their __del__
    # can no longer unsubscribe (and prints a traceback)
    del result
    _forget_pending()
    return meta, children, t0, seen


def _chord_figures(
    meta: dict[str, Any], children: list[dict[str, Any] | None], t0: float, seen: float
) -> dict[str, Any]:
    done = [datetime.fromisoformat(c["date_done"]).timestamp() for c in children if c is not None]
    last_parent = datetime.fromisoformat(meta["date_done"]).timestamp()
    return {
        "status": meta["status"],
        "output": meta["result"],
        "t0": t0,
        "seconds": last_parent - t0,
        "observed_seconds": seen - t0,
        "children": len(children),
        "children_ok": sum(1 for c in children if c is not None and c["status"] == "SUCCESS"),
        "children_last_end": (max(done) - t0) if done else None,
        "resume_after_last_child": (last_parent - max(done)) if done else None,
    }


def _forget_pending() -> None:
    backend = app.backend
    # the backend's pending results (concrete, weak): task id -> {id: result}
    for mapping in getattr(backend, "_pending_results", ()):
        for waiters in list(mapping.values()):
            for pending in list(waiters.values()):
                backend.remove_pending_result(pending)
    gc.collect()


def fanout(worker: CeleryWorker, n: int, timeout: float = 300.0) -> dict[str, Any]:
    """chord([noop.s()] * n)(count_results.s()) on the worker of the throughput workload."""
    with Usage(worker.service, redis_client=worker.redis) as usage:
        meta, children, t0, seen = _chord(worker, [noop.s() for _ in range(n)], timeout)
    return {**_chord_figures(meta, children, t0, seen), **usage.as_dict()}


def limited(worker: CeleryWorker, n: int, limit: int, timeout: float = 300.0) -> dict[str, Any]:
    """chord([work.s() on queue `five`] * n)(count_results.s()), the worker started with
    `--concurrency 5 --queues five,celery`: the limit of 5 is its pool size. Celery records no
    start time (task_track_started is off by default), so the peak concurrency comes from the
    tasks' own time.time() stamps."""
    from workloads import interval_figures

    with Usage(worker.service, redis_client=worker.redis) as usage:
        meta, children, t0, seen = _chord(
            worker, [work.s().set(queue="five") for _ in range(n)], timeout
        )
    own = [
        (c["result"]["started"], c["result"]["ended"])
        for c in children
        if c is not None and c["status"] == "SUCCESS"
    ]
    return {
        **_chord_figures(meta, children, t0, seen),
        **interval_figures("own", own, t0, limit),
        **usage.as_dict(),
    }


def countdown_sleep(
    worker: CeleryWorker, n: int, seconds: float, timeout: float = 300.0
) -> dict[str, Any]:
    """n noop tasks published with countdown=seconds (an ETA): the worker takes every message at
    once and holds it in memory until its ETA, unacknowledged in Redis. Clock: time.time() before
    the first publish to the largest date_done."""
    ids: list[str] = []
    with Usage(worker.service, redis_client=worker.redis) as usage:
        t0 = time.time()
        for start in range(0, n, 1000):
            with app.producer_or_acquire() as producer:
                ids.extend(
                    noop.apply_async(countdown=seconds, producer=producer).id
                    for _ in range(min(1000, n - start))
                )
        triggered = time.time()
        statuses, done_at, seen = wait_results(worker.redis, ids, timeout)
    last = max(done_at) if done_at else seen
    return {
        "t0": t0,
        "runs": n,
        "children_ok": statuses.get("SUCCESS", 0),
        "trigger_seconds": triggered - t0,
        "seconds": last - t0,
        "observed_seconds": seen - t0,
        "first_end": (min(done_at) - t0) if done_at else None,
        **usage.as_dict(),
    }
