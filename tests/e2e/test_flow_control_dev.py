"""Rate limits and the turns of concurrency keys on the laptop topology: one `conveyor dev` (its
embedded SQLite, its in-process worker of capacity 2, the slots the keys compete for), the same
tasks and the same checks from the bodies' history as on the fleet
(tests/e2e/test_flow_control_fleet.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Client
from tests.e2e.conftest import DevServer, make_project, wait_for
from tests.e2e.test_flow_control_fleet import History, assert_rate_limited, ended, tag

CAPACITY = 2


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = make_project(tmp_path_factory.mktemp("flow-dev"))
    server = DevServer(root, args=("--capacity", str(CAPACITY)))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    with dev.client() as c:
        yield c


@pytest.fixture(scope="module")
def history(dev: DevServer) -> History:
    return History(Path(dev.root))


def test_rate_limit_per_key_holds_on_conveyor_dev(client: Client, history: History) -> None:
    keys = [f"rate-{tag()}-{k}" for k in "ab"]
    items = [
        {"payload": {"seconds": 0.1}, "options": {"concurrency_key": key}}
        for _ in range(7)
        for key in keys
    ]
    ids = [r.id for r in client.tasks.batch_trigger("flow-rated", items).runs]
    executions = ended(history, ids, 60, "every rated run")
    assert_rate_limited(executions, keys, per_key=7)
    assert Counter(e.run for e in executions) == dict.fromkeys(ids, 1)
    queue = client.queues.retrieve("flow-rated")
    assert queue.rate_limit is not None and queue.rate_limit.limit == 3  # declared in the code


def test_a_small_tenant_starts_within_a_turn_of_a_backlog_on_conveyor_dev(
    client: Client, history: History
) -> None:
    big, small = f"big-{tag()}", f"small-{tag()}"
    items = [{"payload": {"seconds": 0.1}, "options": {"concurrency_key": big}}] * 300
    ids = [r.id for r in client.tasks.batch_trigger("flow-fair", items).runs]
    wait_for(lambda: len(history.of(ids)) >= 4, timeout=30, what="the backlog to be under way")
    handle = client.trigger("flow-fair", {"seconds": 0.1}, concurrency_key=small)
    created = client.runs.retrieve(handle.id).created_at.timestamp()
    (mine,) = ended(history, [handle.id], 30, "the small tenant's run")
    client.queues.pause("flow-fair")  # the rest of the backlog stays queued
    try:
        bigs = history.of(ids)
        overtaking = [e for e in bigs if created < e.start < mine.start]
        # at most what was leased into the slots before the trigger, and one lease beside it
        assert len(overtaking) <= CAPACITY + 2, [round(e.start - created, 3) for e in overtaking]
        assert len([e for e in bigs if e.start < mine.start]) < 60  # first in, first out: 300
    finally:
        for run_id in ids:
            if client.runs.retrieve(run_id).status.value == "QUEUED":
                client.runs.cancel(run_id)
        client.queues.resume("flow-fair")


def test_weighted_keys_take_turns_in_proportion_on_conveyor_dev(
    client: Client, history: History
) -> None:
    client.queues.pause("flow-weighted")
    ids: list[str] = []
    for key in "ab":
        items = [{"payload": {"seconds": 0.05}, "options": {"concurrency_key": key}}] * 24
        ids += [r.id for r in client.tasks.batch_trigger("flow-weighted", items).runs]
    client.queues.resume("flow-weighted")
    order = [e.key for e in ended(history, ids, 60, "every weighted run")]
    for n in (16, 28):  # while both have runs waiting, "a" starts three for every one of "b"
        assert abs(order[:n].count("a") - 0.75 * n) <= 2, (n, "".join(k or "-" for k in order))
