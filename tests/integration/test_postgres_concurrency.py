"""Several servers on one PostgreSQL: engines in threads of their own, each with its own
connection pool, lease, complete, cancel and tick at the same time. Queue limits hold across
all of them and no run is started twice."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition, TriggerOptions
from conveyor.protocol import Heartbeat
from conveyor.store import open_store
from tests.databases import postgres_schema
from tests.integration.conftest import held

RUNS = 2000
LIMIT = 4

TASKS = [
    TaskDefinition(
        id="limited",
        queue=QueueSpec(name="limited", concurrency_limit=LIMIT),
        retry=RetryPolicy(max_attempts=1),
    ),
    TaskDefinition(id="free", queue=QueueSpec(name="free"), retry=RetryPolicy(max_attempts=1)),
]


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    with postgres_schema() as url:
        stores = [open_store(url) for _ in range(3)]
        stores[0].migrate()
        yield [Engine(store, worker_timeout=60) for store in stores]
        for store in stores:
            store.close()


def test_limits_hold_and_runs_start_once_across_servers(engines: list[Engine]) -> None:
    env = engines[0].environments.ensure("proj", "prod", "prod")
    for i, engine in enumerate(engines):
        engine.workers.register(env.id, f"w{i}", f"w{i}", TASKS)
    for start in range(0, RUNS, 1000):
        engines[start // 1000 % 3].tasks.batch_trigger(
            env.id, [("limited", {"i": i}, _options()) for i in range(start, start + 1000)]
        )
    engines[1].tasks.batch_trigger(env.id, [("free", {"i": i}, _options()) for i in range(300)])

    leased: Counter[str] = Counter()
    by_worker: Counter[str] = Counter()
    seen: list[int] = []  # EXECUTING runs of the limited queue, in snapshots from a third server
    errors: list[BaseException] = []
    done = threading.Event()
    ledger = threading.Lock()

    def work(engine: Engine, worker_id: str) -> None:
        try:
            while not done.is_set():
                engine.workers.heartbeat(worker_id, Heartbeat())
                attempts = engine.workers.lease(env.id, worker_id, capacity=3).attempts
                with ledger:
                    leased.update(a.run_id for a in attempts)
                    by_worker[worker_id] += sum(1 for a in attempts if a.task_id == "limited")
                if not attempts:
                    time.sleep(0.002)
                    continue
                time.sleep(random.uniform(0.001, 0.006))  # the attempts run
                engine.workers.complete(
                    worker_id,
                    [
                        held(engine, a.run_id, a.attempt, "completed", output_json="null")
                        for a in attempts
                    ],
                )
        except BaseException as exc:
            errors.append(exc)
            done.set()

    def tick(engine: Engine) -> None:
        try:
            while not done.is_set():
                engine.tick()
                time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
            done.set()

    threads = [threading.Thread(target=work, args=(engines[i % 3], f"w{i % 3}")) for i in range(3)]
    threads += [threading.Thread(target=tick, args=(engine,)) for engine in engines[:2]]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and not done.is_set():
            counts = {q.name: (q.running, q.queued) for q in engines[2].queues.list(env.id)}
            seen.append(counts["limited"][0])
            if all(c == (0, 0) for c in counts.values()):
                break
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not errors, errors
    assert len(leased) == RUNS + 300 and set(leased.values()) == {
        1
    }  # every run started exactly once
    assert max(seen) == LIMIT and seen.count(LIMIT) > 10, Counter(seen)  # full, never over
    assert all(by_worker[f"w{i}"] > 0 for i in range(3)), by_worker  # every worker got a share
    completed = 0
    cursor = None
    while True:
        page, cursor = engines[2].runs.list(env.id, limit=1000, cursor=cursor)
        completed += sum(1 for r in page if r.status == RunStatus.COMPLETED and r.attempts == 1)
        if cursor is None:
            break
    assert completed == RUNS + 300


def test_a_cancel_racing_leases_never_leaves_a_canceled_run_executing(
    engines: list[Engine],
) -> None:
    env = engines[0].environments.ensure("proj", "prod", "prod")
    for i, engine in enumerate(engines):
        engine.workers.register(env.id, f"w{i}", f"w{i}", TASKS)
    runs = (
        engines[0]
        .tasks.batch_trigger(env.id, [("free", {"i": i}, _options()) for i in range(400)])
        .runs
    )
    errors: list[BaseException] = []
    leased: list[str] = []
    fences: dict[str, int] = {}

    def lease(engine: Engine, worker_id: str) -> None:
        try:
            for _ in range(200):
                for attempt in engine.workers.lease(env.id, worker_id, capacity=2).attempts:
                    leased.append(attempt.run_id)
                    fences[attempt.run_id] = attempt.fence
        except BaseException as exc:
            errors.append(exc)

    def cancel() -> None:
        try:
            for run in runs[::2]:
                engines[2].runs.cancel(env.id, run.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lease, args=(engines[i], f"w{i}")) for i in range(2)]
    threads.append(threading.Thread(target=cancel))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(leased) == len(set(leased))
    for run in runs[::2]:
        after = engines[1].runs.get(env.id, run.id, with_attempts=True)
        assert after.status == RunStatus.CANCELED
        if (
            run.id in leased
        ):  # canceled while executing: the attempt was recorded and the worker told
            assert [a.status for a in after.attempt_list or []] == ["CANCELED"]
    canceled_while_executing = [r for r in leased if r in {x.id for x in runs[::2]}]
    assert canceled_while_executing  # the race happened
    running = [(r, fences[r]) for r in canceled_while_executing]
    assert set(engines[0].workers.heartbeat("w0", Heartbeat(running=running)).stop) == set(
        canceled_while_executing
    )


def _options() -> TriggerOptions:
    return TriggerOptions()
