"""Many servers and many workers on one PostgreSQL, as a team runs them: two `conveyor server`
processes, three `conveyor worker` processes, real kills, and a real restart of PostgreSQL
(a private cluster of the test's own: the machine's server is shared and never restarted)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError
from tests.databases import postgres_schema
from tests.e2e.conftest import make_project, wait_for
from tests.e2e.fleet import Fleet, fleet_on
from tests.pg_cluster import PgCluster, pg_cluster

LIMIT = 4  # queue "four" of tests/e2e/project/tasks/fleet.py


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with postgres_schema() as url, fleet_on(url, make_project(tmp_path)) as running:
        yield running


def peak(executions: list[tuple[str, int, str, float, float]]) -> int:
    edges = sorted([(e[3], 1) for e in executions] + [(e[4], -1) for e in executions])
    current = top = 0
    for _, step in edges:
        current += step
        top = max(top, current)
    return top


def trigger_all(fleet: Fleet, total: int, seconds: float) -> list[str]:
    """Half the runs through each server, in batches."""
    ids: list[str] = []
    for start in range(0, total, 500):
        with fleet.client(start // 500 % 2) as client:
            batch = client.tasks.batch_trigger(
                "fleet", [{"payload": {"seconds": seconds}} for _ in range(min(500, total - start))]
            )
            ids += [r.id for r in batch.runs]
    return ids


def wait_completed(fleet: Fleet, ids: list[str], timeout: float) -> None:
    with fleet.client(1) as client:

        def done() -> bool:
            queues = {q.name: q for q in client.queues.list()}
            return queues["four"].queued == 0 and queues["four"].running == 0

        wait_for(done, timeout=timeout, interval=0.5, what="every fleet run to end")
        statuses = Counter(client.runs.retrieve(i).status.value for i in ids[::50])
    assert statuses == {"COMPLETED": len(ids[::50])}, statuses


def test_two_servers_three_workers_run_2000_runs_once_each_within_the_limit(fleet: Fleet) -> None:
    ids = trigger_all(fleet, 2000, seconds=0.01)
    wait_completed(fleet, ids, timeout=240)
    executions = fleet.executions()
    per_run = Counter(e[0] for e in executions)
    assert set(per_run) == set(ids) and set(per_run.values()) == {
        1
    }  # each run executed exactly once
    assert peak(executions) == LIMIT  # the queue's limit, across both servers and all workers
    assert set(Counter(e[2] for e in executions)) == {
        "w0-0",
        "w0-1",
        "w1-0",
    }  # every worker took runs


def test_kill_9_of_a_worker_under_load_its_runs_finish_elsewhere(fleet: Fleet) -> None:
    ids = trigger_all(fleet, 300, seconds=0.3)
    victim = fleet.workers[0]
    wait_for(
        lambda: any(e[2] == victim.name for e in fleet.executions()),
        timeout=60,
        what="the victim to run some",
    )
    victim.kill9()
    wait_completed(
        fleet, ids, timeout=240
    )  # the server took back what it held (worker timeout: 10 s)
    finished = {e[0] for e in fleet.executions()}
    assert finished == set(ids)
    assert peak(fleet.executions()) <= LIMIT


def test_restart_of_postgresql_under_load_loses_nothing(tmp_path: Path) -> None:
    with pg_cluster() as cluster, fleet_on(cluster.url, make_project(tmp_path)) as fleet:
        restart_under_load(fleet, cluster)


def restart_under_load(fleet: Fleet, cluster: PgCluster) -> None:
    ids = trigger_all(fleet, 400, seconds=0.05)
    late: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_triggering() -> (
        None
    ):  # a backend triggering through the restart, retrying what was refused
        with fleet.client(1) as client:
            while not stop.is_set():
                try:
                    late.append(client.trigger("fleet", {"seconds": 0.01}).id)
                except ConveyorError as exc:
                    failures.append(str(exc))
                    time.sleep(0.2)
                time.sleep(0.02)

    backend = threading.Thread(target=keep_triggering)
    backend.start()
    try:
        wait_for(lambda: len(fleet.executions()) > 50, timeout=60, what="runs to be under way")
        cluster.restart()  # the test's own PostgreSQL, never the machine's
        time.sleep(3)  # triggers keep coming after the restart
    finally:
        stop.set()
        backend.join(timeout=30)
    assert late, "the backend triggered nothing"
    wait_completed(fleet, ids + late, timeout=240)
    finished = Counter(e[0] for e in fleet.executions())
    assert set(finished) == set(ids + late)  # nothing lost
    for process in [*fleet.servers, *fleet.workers]:  # servers and workers lived through it
        assert process.proc is not None and process.proc.poll() is None
