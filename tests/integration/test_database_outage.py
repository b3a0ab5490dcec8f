"""A PostgreSQL outage seen from one server: a private cluster the test stops and starts.

Requests fail at once while the database is away (never the 30 s a pool's checkout could
wait), work again as soon as it answers, and the engine judges no worker lost for heartbeats
it could not record: it takes a silent worker's runs back only once it has had the database
for the whole take-back span since the outage ended."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from conveyor.engine import Engine
from conveyor.errors import StoreUnavailable
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition
from conveyor.store.postgres import PostgresStore
from tests.integration.conftest import ManualClock
from tests.pg_cluster import PgCluster, pg_cluster

TASKS = [TaskDefinition(id="job", queue=QueueSpec(name="job"), retry=RetryPolicy(max_attempts=1))]


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    with pg_cluster() as running:
        yield running


@pytest.fixture
def store(cluster: PgCluster) -> Iterator[PostgresStore]:
    store = PostgresStore(cluster.url)
    store.migrate()
    yield store
    store.close()


def timed(call: Callable[[], object]) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        call()
    except StoreUnavailable as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def test_requests_fail_at_once_while_the_database_is_away_and_work_as_soon_as_it_is_back(
    cluster: PgCluster, store: PostgresStore
) -> None:
    assert timed(store.check)[1] is None
    time.sleep(1.2)  # the pool's connection is idle long enough to be checked before use
    cluster.stop()
    for _ in range(5):
        took, error = timed(store.check)
        assert error is not None and took < 2, f"took {took:.2f}s"
    cluster.start()
    back = time.monotonic()
    while timed(store.check)[1] is not None:
        assert time.monotonic() - back < 3, "still failing 3 s after the database came back"
        time.sleep(0.05)


def test_no_worker_is_judged_lost_for_heartbeats_the_database_could_not_record(
    cluster: PgCluster, store: PostgresStore
) -> None:
    clock = ManualClock()
    engine = Engine(store, clock=clock, worker_timeout=10)
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(env.id, "w1", "w1", TASKS)
    run = engine.tasks.trigger(env.id, "job", {})
    assert [a.run_id for a in engine.workers.lease(env.id, "w1", 1).attempts] == [run.id]

    cluster.stop()  # w1's heartbeats cannot be recorded from now on
    clock.advance(engine.workers.take_back_after)
    with pytest.raises(StoreUnavailable):
        engine.tick()
    cluster.start()
    deadline = time.monotonic() + 5
    while timed(store.check)[1] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    clock.advance(1)  # w1's last recorded heartbeat is older than the take-back span ...
    engine.tick()  # ... but the engine has had the database for a second only
    assert engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING
    clock.advance(engine.workers.take_back_after - 0.5)
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING
    clock.advance(1)  # the whole span with the database, and still no heartbeat: lost
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.CRASHED
