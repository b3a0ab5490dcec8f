"""Deployed versions in the engine: numbering, promotion and rollback, runs locked to the version
they started on, runs waiting in PENDING_VERSION, and the out-of-memory machine upgrade."""

from __future__ import annotations

import hashlib

import pytest

from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.models import (
    OutOfMemoryRetry,
    QueueSpec,
    RetryPolicy,
    RunStatus,
    TaskDefinition,
    TriggerOptions,
)
from conveyor.protocol import Heartbeat, TriggerCall, TriggerItem, WaitUntilCall
from tests.bundles import small_bundle
from tests.integration.conftest import current_fence, held, holder

BUNDLE = small_bundle()
LOCK = hashlib.sha256(b"").hexdigest()


@pytest.fixture
def prod(engine):
    env = engine.environments.ensure("proj", "prod", "prod")
    engine.workers.register(env.id, "w1", "w1", None, deployed=True)
    return env


def define(
    task_id: str,
    *,
    machine: str = "small-1x",
    retry: RetryPolicy | None = None,
    queue: str | None = None,
    description: str | None = None,
) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=queue or task_id),
        machine=machine,
        retry=retry or RetryPolicy(max_attempts=3, min_timeout_ms=0, randomize=False),
        description=description,
    )


def deploy(engine, env, *tasks: TaskDefinition, promote: bool = True):
    return engine.deployments.deploy(
        env.id, list(tasks), BUNDLE, lock_sha256=LOCK, details={"python": "3.11"}, promote=promote
    )


def lease(engine, env, worker="w1", capacity=100):
    engine.workers.heartbeat(worker, Heartbeat())
    return engine.workers.lease(env.id, worker, capacity).attempts


def test_versions_are_numbered_by_day_and_the_newest_is_current(engine, prod, clock):
    first = deploy(engine, prod, define("a"))
    second = deploy(engine, prod, define("a"), define("b"))
    assert (first.version, second.version) == ("20270115.1", "20270115.2")
    clock.advance(86400)
    assert deploy(engine, prod, define("a")).version == "20270116.1"
    page, cursor = engine.deployments.list(prod.id)
    assert [d.version for d in page] == [
        "20270116.1",
        "20270115.2",
        "20270115.1",
    ] and cursor is None
    assert [d.is_current for d in page] == [True, False, False]
    assert engine.deployments.get(prod.id, "20270115.2").tasks == ["a", "b"]
    assert engine.deployments.get(prod.id, "current").version == "20270116.1"


def test_a_bundle_comes_back_as_it_was_uploaded(engine, prod):
    import base64

    version = deploy(engine, prod, define("a")).version
    fetched = engine.deployments.bundle(prod.id, version)
    assert base64.b64decode(fetched.bundle) == BUNDLE
    assert (
        fetched.bundle_sha256
        == hashlib.sha256(BUNDLE).hexdigest()
        == engine.deployments.get(prod.id, version).bundle_sha256
    )


def test_a_run_locks_to_the_version_current_when_it_starts_and_keeps_it(engine, prod, clock):
    v1 = deploy(engine, prod, define("a")).version
    run = engine.tasks.trigger(prod.id, "a", {})
    assert engine.runs.get(prod.id, run.id).version is None  # not started: no version yet
    [spec] = lease(engine, prod)
    assert spec.version == v1 and engine.runs.get(prod.id, run.id).version == v1
    v2 = deploy(engine, prod, define("a", description="changed")).version
    engine.workers.complete("w1", [held(engine, run.id, 1, "failed", error={"message": "boom"})])
    [retry] = lease(engine, prod)
    assert retry.attempt == 2 and retry.version == v1  # a retry stays on its version
    fresh = engine.tasks.trigger(prod.id, "a", {})
    engine.workers.complete("w1", [held(engine, run.id, 2, "completed", output_json="1")])
    [started] = lease(engine, prod)
    assert started.run_id == fresh.id and started.version == v2


def test_a_resumed_wait_stays_on_its_version_and_children_it_waits_for_share_it(
    engine, prod, clock
):
    v1 = deploy(engine, prod, define("parent"), define("child")).version
    parent = engine.tasks.trigger(prod.id, "parent", {})
    lease(engine, prod)
    answer = engine.durable.call(
        prod.id,
        parent.id,
        TriggerCall("trigger:child#1", [TriggerItem("child", {}, {})], wait=True, batch=False),
        **holder(engine, parent.id),
    )
    child_id = answer["runs"][0]["id"]
    assert engine.runs.get(prod.id, child_id).version == v1  # locked from the start
    plain = engine.durable.call(
        prod.id,
        parent.id,
        TriggerCall("trigger:child#2", [TriggerItem("child", {}, {})], wait=False, batch=False),
        **holder(engine, parent.id),
    )
    assert (
        engine.runs.get(prod.id, plain["runs"][0]["id"]).version is None
    )  # a plain trigger starts on current
    waited = engine.durable.call(
        prod.id,
        parent.id,
        WaitUntilCall("wait#1", clock.now + 60),
        **holder(engine, parent.id),
    )
    engine.durable.suspend(
        "w1",
        parent.id,
        1,
        [answer["waitpoint"]["id"], waited["waitpoint"]["id"]],
        0.1,
        current_fence(engine, parent.id),
    )
    deploy(engine, prod, define("parent", description="v2"), define("child", description="v2"))
    child = next(a for a in lease(engine, prod) if a.run_id == child_id)
    assert child.run_id == child_id and child.version == v1
    engine.workers.complete("w1", [held(engine, child_id, 1, "completed", output_json="{}")])
    clock.advance(61)
    engine.tick()
    [resumed] = [a for a in lease(engine, prod) if a.run_id == parent.id]
    assert resumed.resumed and resumed.version == v1


def test_a_run_of_a_task_no_version_defines_waits_in_pending_version_until_one_does(
    engine, prod, clock
):
    deploy(engine, prod, define("a"))
    run = engine.tasks.trigger(
        prod.id, "later", {"n": 1}, TriggerOptions(max_attempts=7, tags=["t"], ttl=60)
    )
    assert engine.runs.get(prod.id, run.id).status == RunStatus.PENDING_VERSION
    assert [r.id for r in engine.runs.list(prod.id, statuses=["PENDING_VERSION"])[0]] == [run.id]
    clock.advance(3600)  # its ttl does not run out while no version can run it
    engine.tick()
    assert lease(engine, prod) == []
    deploy(engine, prod, define("a"), define("later", machine="medium-1x", queue="shared"))
    got = engine.runs.get(prod.id, run.id)
    assert (got.status, got.max_attempts, got.machine, got.queue, got.tags) == (
        RunStatus.QUEUED,
        7,
        "medium-1x",
        "shared",
        ["t"],
    )
    [spec] = lease(engine, prod)
    assert spec.run_id == run.id and spec.machine == "medium-1x"


def test_a_deploy_without_promotion_changes_nothing_until_promoted(engine, prod):
    v1 = deploy(engine, prod, define("a")).version
    v2 = deploy(engine, prod, define("a"), define("b"), promote=False)
    assert not v2.is_current and engine.deployments.get(prod.id, "current").version == v1
    run = engine.tasks.trigger(prod.id, "b", {})
    assert engine.runs.get(prod.id, run.id).status == RunStatus.PENDING_VERSION
    assert engine.deployments.promote(prod.id, v2.version).is_current
    assert engine.runs.get(prod.id, run.id).status == RunStatus.QUEUED


def test_a_rollback_moves_unstarted_runs_of_tasks_it_lacks_to_pending_version(engine, prod):
    v1 = deploy(engine, prod, define("a")).version
    v2 = deploy(engine, prod, define("a"), define("b")).version
    queued = engine.tasks.trigger(prod.id, "b", {})
    delayed = engine.tasks.trigger(prod.id, "b", {}, TriggerOptions(delay=3600))
    engine.deployments.promote(prod.id, v1)
    assert {engine.runs.get(prod.id, r.id).status for r in (queued, delayed)} == {
        RunStatus.PENDING_VERSION
    }
    assert lease(engine, prod) == []
    engine.deployments.promote(prod.id, v2)
    assert engine.runs.get(prod.id, queued.id).status == RunStatus.QUEUED
    assert engine.runs.get(prod.id, delayed.id).status == RunStatus.DELAYED


def test_unknown_versions_and_dev_deploys_are_refused_clearly(engine, prod):
    with pytest.raises(NotFound, match="not deployed"):
        engine.deployments.promote(prod.id, "20270115.9")
    with pytest.raises(NotFound, match="nothing is deployed"):
        engine.deployments.get(prod.id, "current")
    dev = engine.environments.ensure("proj", "dev", "dev")
    with pytest.raises(InvalidRequest, match="dev"):
        deploy(engine, dev, define("a"))
    with pytest.raises(InvalidRequest, match="at least one task"):
        deploy(engine, prod)


def test_a_worker_with_its_own_code_cannot_serve_an_environment_with_a_deployed_version(
    engine, prod
):
    deploy(engine, prod, define("a"))
    with pytest.raises(Conflict, match="conveyor worker --env prod"):
        engine.workers.register(prod.id, "local", "local", [define("a")])
    engine.workers.register(prod.id, "local", "local")  # not running code yet: allowed
    engine.tasks.trigger(prod.id, "a", {})
    assert lease(engine, prod, worker="local") == []  # it takes nothing it would run on other code
    assert len(lease(engine, prod)) == 1


def test_an_attempt_out_of_memory_runs_again_on_the_larger_machine_without_using_a_retry(
    engine, prod
):
    retry = RetryPolicy(max_attempts=1, out_of_memory=OutOfMemoryRetry(machine="small-2x"))
    deploy(
        engine,
        prod,
        define("big", machine="micro", retry=retry),
        define("plain", machine="micro", retry=RetryPolicy(max_attempts=1)),
    )
    big, plain = (
        engine.tasks.trigger(prod.id, "big", {}),
        engine.tasks.trigger(prod.id, "plain", {}),
    )
    lease(engine, prod)
    oom = {"name": "OutOfMemory", "code": "out_of_memory", "message": "machine micro has 256 MB"}
    engine.workers.complete(
        "w1",
        [
            held(engine, big.id, 1, "crashed", error=oom),
            held(engine, plain.id, 1, "crashed", error=oom),
        ],
    )
    assert engine.runs.get(prod.id, plain.id).status == RunStatus.CRASHED  # no upgrade: as before
    [again] = lease(engine, prod)
    assert (again.run_id, again.attempt, again.machine) == (big.id, 2, "small-2x")
    engine.workers.complete("w1", [held(engine, big.id, 2, "crashed", error=oom)])
    got = engine.runs.get(prod.id, big.id)
    assert (
        got.status == RunStatus.CRASHED and got.error.code == "out_of_memory"
    )  # already on the larger one


def test_a_worker_bringing_its_own_code_to_staging_queues_the_runs_waiting_for_it(engine):
    staging = engine.environments.ensure("proj", "staging", "staging")
    run = engine.tasks.trigger(staging.id, "a", {})
    assert engine.runs.get(staging.id, run.id).status == RunStatus.PENDING_VERSION
    engine.workers.register(staging.id, "w", "w", [define("a")])
    assert engine.runs.get(staging.id, run.id).status == RunStatus.QUEUED
    assert lease(engine, staging, worker="w")[0].version is None


def test_dev_keeps_refusing_unknown_tasks_and_runs_unversioned(engine):
    dev = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(dev.id, "w", "w", [define("a")])
    with pytest.raises(NotFound):
        engine.tasks.trigger(dev.id, "nope", {})
    engine.tasks.trigger(dev.id, "a", {})
    assert lease(engine, dev, worker="w")[0].version is None


def test_a_worker_of_deployed_versions_takes_nothing_while_nothing_is_deployed(engine):
    staging = engine.environments.ensure("proj", "staging", "staging")
    engine.workers.register(staging.id, "local", "local", [define("a")])
    engine.workers.register(staging.id, "deployed", "deployed", None, deployed=True)
    engine.tasks.trigger(staging.id, "a", {})
    assert lease(engine, staging, worker="deployed") == []  # it has no code for runs of no version
    assert lease(engine, staging, worker="local")[0].version is None
