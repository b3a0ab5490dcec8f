"""Fencing: only the attempt holding a run now may change it.

Every lease raises the run's fence, and so does every take-away (a cancel, a take-back from a
silent worker). Outcomes, log lines, hook reports and durable calls carry the fence of the
attempt they come from; the engine refuses or ignores them once it is not the run's fence, and
durable calls are checked in the transaction of their effect. Both databases.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from conveyor.engine import Engine, Environment
from conveyor.errors import StaleAttempt
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition
from conveyor.protocol import (
    AttemptOutcome,
    CreateTokenCall,
    DurableCall,
    Heartbeat,
    JournalCall,
    LogEntry,
    TriggerCall,
    TriggerItem,
    WaitUntilCall,
)
from tests.integration.conftest import ManualClock

if TYPE_CHECKING:
    from conftest import Backend

TASKS = [
    TaskDefinition(id="parent", queue=QueueSpec(name="parent"), retry=RetryPolicy(max_attempts=3)),
    TaskDefinition(id="child", queue=QueueSpec(name="child"), retry=RetryPolicy(max_attempts=1)),
    TaskDefinition(
        id="single",
        queue=QueueSpec(name="single", concurrency_limit=1),
        retry=RetryPolicy(max_attempts=1),
    ),
    TaskDefinition(
        id="hooked",
        queue=QueueSpec(name="hooked"),
        retry=RetryPolicy(max_attempts=1),
        hooks=["on_success"],
    ),
]


@pytest.fixture
def env(engine: Engine) -> Environment:
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(env.id, "w1", "w1", TASKS)
    engine.workers.register(env.id, "w2", "w2", TASKS)
    return env


def start(engine: Engine, env: Environment, worker: str = "w1"):
    engine.workers.heartbeat(worker, Heartbeat())
    (spec,) = engine.workers.lease(env.id, worker, 1).attempts
    return spec


def children(engine: Engine, env: Environment, parent_id: str) -> list[str]:
    return [r.id for r in engine.runs.list(env.id, task_id="child")[0] if r.parent_id == parent_id]


def call(engine: Engine, env: Environment, spec, message: DurableCall, worker: str = "w1"):
    return engine.durable.call(env.id, spec.run_id, message, worker_id=worker, fence=spec.fence)


TRIGGER = TriggerCall(
    "trigger_and_wait:child#1", [TriggerItem("child", {}, {})], wait=True, batch=False
)


def test_a_canceled_runs_attempt_can_make_no_durable_call(engine: Engine, env: Environment) -> None:
    run = engine.tasks.trigger(env.id, "parent", {})
    spec = start(engine, env)
    engine.runs.cancel(env.id, run.id)
    for message in [
        TRIGGER,
        JournalCall("step:pay#1", 1),
        WaitUntilCall("wait.for#1", time.time() + 60),
        CreateTokenCall("token.create#1"),
    ]:
        with pytest.raises(StaleAttempt):
            call(engine, env, spec, message)
    assert children(engine, env, run.id) == []
    assert engine.runs.trace(env.id, run.id).root.children[0].children == []  # nothing journaled


def test_a_canceled_run_keeps_its_slot_until_its_body_has_stopped(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    first = engine.tasks.trigger(env.id, "single", {})
    engine.workers.heartbeat("w1", Heartbeat())
    (spec,) = engine.workers.lease(env.id, "w1", 1).attempts
    engine.runs.cancel(env.id, first.id)
    second = engine.tasks.trigger(env.id, "single", {})
    engine.workers.heartbeat("w2", Heartbeat())
    assert (
        engine.workers.lease(env.id, "w2", 1).attempts == []
    )  # the canceled body may still run: the limit is 1
    reply = engine.workers.heartbeat("w1", Heartbeat(running=[(first.id, spec.fence)], lease_seq=1))
    assert first.id in reply.stop  # told to stop; it has not yet
    assert engine.workers.lease(env.id, "w2", 1).attempts == []
    engine.workers.heartbeat("w1", Heartbeat(running=[], lease_seq=1))  # its body has ended
    assert [a.run_id for a in engine.workers.lease(env.id, "w2", 1).attempts] == [second.id]
    assert (
        engine.runs.get(env.id, first.id).status == RunStatus.CANCELED
    )  # canceled at once all along


def test_a_lost_worker_gives_back_the_slots_of_its_canceled_runs(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    first = engine.tasks.trigger(env.id, "single", {})
    engine.workers.heartbeat("w1", Heartbeat())
    engine.workers.lease(env.id, "w1", 1)
    engine.runs.cancel(env.id, first.id)
    second = engine.tasks.trigger(env.id, "single", {})
    clock.advance(engine.workers.take_back_after + 1)
    engine.workers.heartbeat("w2", Heartbeat())
    engine.tick()
    assert [a.run_id for a in engine.workers.lease(env.id, "w2", 1).attempts] == [second.id]


def test_a_completed_run_refuses_a_durable_trigger(engine: Engine, env: Environment) -> None:
    run = engine.tasks.trigger(env.id, "parent", {})
    spec = start(engine, env)
    engine.workers.complete(
        "w1", [AttemptOutcome(run.id, 1, "completed", output_json="1", fence=spec.fence)]
    )
    with pytest.raises(StaleAttempt):
        call(engine, env, spec, TRIGGER)
    assert children(engine, env, run.id) == []


def test_another_worker_of_the_environment_cannot_speak_for_an_attempt(
    engine: Engine, env: Environment
) -> None:
    run = engine.tasks.trigger(env.id, "parent", {})
    spec = start(engine, env, "w1")
    with pytest.raises(StaleAttempt):
        call(engine, env, spec, TRIGGER, worker="w2")
    assert call(engine, env, spec, TRIGGER)["runs"]  # the holder can
    assert len(children(engine, env, run.id)) == 1


def test_after_a_take_back_only_the_new_attempt_counts(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    run = engine.tasks.trigger(env.id, "parent", {})
    old = start(engine, env, "w1")
    clock.advance(engine.workers.take_back_after + 1)  # w1 went silent
    engine.workers.heartbeat("w2", Heartbeat())
    engine.tick()
    clock.advance(2)  # its retry delay
    new = start(engine, env, "w2")
    assert new.run_id == run.id and new.fence > old.fence
    # the stale attempt reports: its calls are refused, its outcome, logs and suspend ignored
    with pytest.raises(StaleAttempt):
        call(engine, env, old, JournalCall("step:pay#1", "stale"))
    engine.workers.complete(
        "w1",
        [AttemptOutcome(run.id, old.attempt, "completed", output_json='"stale"', fence=old.fence)],
    )
    assert (
        engine.workers.append_logs(
            [LogEntry(run.id, old.attempt, 1, clock.now, "info", "stale line", fence=old.fence)]
        )
        == 0
    )
    assert engine.durable.suspend("w1", run.id, old.attempt, ["wait_x"], 0.0, old.fence) == {
        "suspended": False,
        "gone": True,
    }
    assert engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING
    # a heartbeat of the stale worker is told to stop it
    assert engine.workers.heartbeat("w1", Heartbeat(running=[(run.id, old.fence)])).stop == [run.id]
    # the holder's work counts
    assert call(engine, env, new, JournalCall("step:pay#1", "new"), worker="w2") == "new"
    assert (
        engine.workers.append_logs(
            [LogEntry(run.id, new.attempt, 2, clock.now, "info", "new line", fence=new.fence)]
        )
        == 1
    )
    engine.workers.complete(
        "w2",
        [AttemptOutcome(run.id, new.attempt, "completed", output_json='"new"', fence=new.fence)],
    )
    done = engine.runs.get(env.id, run.id)
    assert (done.status, done.output) == (RunStatus.COMPLETED, "new")
    assert [line.message for line in engine.runs.logs(env.id, run.id)] == ["new line"]


def test_a_run_handed_out_again_to_the_same_worker_stops_its_older_attempt(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    run = engine.tasks.trigger(env.id, "parent", {})
    old = start(engine, env, "w1")
    engine.workers.register(
        env.id, "w1", "w1", TASKS
    )  # it restarted under the same id: the run is retried
    clock.advance(2)  # its retry delay
    again = start(engine, env, "w1")
    assert again.run_id == run.id and again.fence > old.fence
    beat = Heartbeat(running=[(run.id, old.fence)], lease_seq=99)
    assert engine.workers.heartbeat("w1", beat).stop == [run.id]
    # the older attempt's late outcome changes nothing
    engine.workers.complete(
        "w1",
        [AttemptOutcome(run.id, old.attempt, "failed", error={"message": "x"}, fence=old.fence)],
    )
    assert engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING


def test_the_take_back_waits_longer_than_the_worker_stops_itself(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    assert engine.workers.take_back_after >= engine.workers.timeout + 5
    run = engine.tasks.trigger(env.id, "parent", {})
    spec = start(engine, env, "w1")
    clock.advance(engine.workers.take_back_after - 0.5)
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING
    clock.advance(1)
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.QUEUED
    # the lost worker's leases so far are revoked: a late lease answer must start nothing
    reply = engine.workers.heartbeat("w1", Heartbeat(running=[(run.id, spec.fence)]))
    assert reply.stop == [run.id] and reply.revoked_through >= 1


def test_only_the_latest_hook_job_reports_its_hook(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    run = engine.tasks.trigger(env.id, "hooked", {})
    spec = start(engine, env)
    engine.workers.complete(
        "w1", [AttemptOutcome(run.id, 1, "completed", output_json="1", fence=spec.fence)]
    )
    (first,) = engine.workers.lease(env.id, "w1", 0).hooks
    clock.advance(61)  # its hook lease ran out: another worker gets the job
    engine.workers.heartbeat("w2", Heartbeat())
    (second,) = engine.workers.lease(env.id, "w2", 0).hooks
    assert second.fence > first.fence
    engine.workers.hook_done(run.id, "on_success", first.fence)  # stale: the hook is still owed
    clock.advance(61)
    assert [h.run_id for h in engine.workers.lease(env.id, "w2", 0).hooks] == [run.id]


def test_a_hook_report_of_the_holder_ends_the_debt(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    run = engine.tasks.trigger(env.id, "hooked", {})
    spec = start(engine, env)
    engine.workers.complete(
        "w1", [AttemptOutcome(run.id, 1, "completed", output_json="1", fence=spec.fence)]
    )
    (job,) = engine.workers.lease(env.id, "w1", 0).hooks
    engine.workers.hook_done(run.id, "on_success", job.fence)
    clock.advance(61)
    assert engine.workers.lease(env.id, "w1", 0).hooks == []


# -- over HTTP, as `conveyor worker` speaks ----------------------------------------------------


def test_a_stale_call_over_http_is_a_409_attempt_stale(api: TestClient, backend: Backend) -> None:
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    (spec,) = backend.engine.workers.lease(backend.env.id, "worker-1", 1).attempts
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    response = api.post(
        "/api/v1/workers/worker-1/calls",
        json={
            "run_id": run_id,
            "fence": spec.fence,
            "op": "durable_trigger",
            "args": {
                "key": "trigger:x#1",
                "items": [["other", {}, {}]],
                "wait": False,
                "batch": False,
            },
        },
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "attempt_stale"
    assert [r["task_id"] for r in api.get("/api/v1/runs").json()["data"]] == [
        "hello"
    ]  # no child was made


def test_log_lines_with_nanosecond_sequences_are_stored(api: TestClient, backend: Backend) -> None:
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    (spec,) = backend.engine.workers.lease(backend.env.id, "worker-1", 1).attempts
    seq = time.time_ns()  # what an attempt's log lines are numbered from: past 32 bits
    line = {
        "run_id": run_id,
        "attempt": 1,
        "seq": seq,
        "ts": time.time(),
        "level": "info",
        "message": "hello",
        "attributes": None,
        "fence": spec.fence,
    }
    response = api.post("/api/v1/workers/worker-1/logs", json={"entries": [line]})
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1}
    assert [
        (x["seq"], x["message"]) for x in api.get(f"/api/v1/runs/{run_id}/logs").json()["data"]
    ] == [(seq, "hello")]


def test_a_line_no_database_can_hold_never_holds_back_the_others(
    api: TestClient, backend: Backend
) -> None:
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    (spec,) = backend.engine.workers.lease(backend.env.id, "worker-1", 1).attempts
    now = time.time()

    def line(seq: int, message: str) -> dict:
        return {
            "run_id": run_id,
            "attempt": 1,
            "seq": seq,
            "ts": now,
            "level": "info",
            "message": message,
            "attributes": {"raw": message},
            "fence": spec.fence,
        }

    response = api.post(
        "/api/v1/workers/worker-1/logs",
        json={
            "entries": [
                line(1, "before"),
                line(2**70, "seq out of range"),
                line(3, "nul \x00 inside"),
                line(4, "after"),
            ]
        },
    )
    assert response.status_code == 200, response.text
    stored = [x["message"] for x in api.get(f"/api/v1/runs/{run_id}/logs").json()["data"]]
    assert stored == ["before", "nul \ufffd inside", "after"]


def test_an_outcome_with_another_fence_is_ignored_over_http(
    api: TestClient, backend: Backend
) -> None:
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    (spec,) = backend.engine.workers.lease(backend.env.id, "worker-1", 1).attempts
    outcome = {
        "run_id": run_id,
        "attempt": 1,
        "kind": "completed",
        "output_json": "1",
        "error": None,
    }
    assert (
        api.post(
            "/api/v1/workers/worker-1/complete",
            json={"outcomes": [{**outcome, "fence": spec.fence + 1}]},
        ).status_code
        == 200
    )
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "EXECUTING"
    assert (
        api.post(
            "/api/v1/workers/worker-1/complete",
            json={"outcomes": [{**outcome, "fence": spec.fence}]},
        ).status_code
        == 200
    )
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED"
