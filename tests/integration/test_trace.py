"""A run's trace over a real SQLite store: the span tree the engine derives from a run's
attempts, journal, waitpoints and child runs, and its HTTP route."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from conveyor.engine import Engine, Environment
from conveyor.models import QueueSpec, RetryPolicy, Span, TaskDefinition, Trace
from conveyor.protocol import (
    CreateTokenCall,
    Heartbeat,
    JournalCall,
    TriggerCall,
    TriggerItem,
    WaitTokenCall,
    WaitUntilCall,
)
from conveyor.store import open_store
from tests.integration.conftest import current_fence, held, holder

if TYPE_CHECKING:
    from conftest import Backend

T0 = 1_800_000_000.0


class FixedClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        self.now = T0 + offset


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def engine(tmp_path: Path, clock: FixedClock) -> Iterator[Engine]:
    store = open_store(str(tmp_path / "trace.db"))
    store.migrate()
    yield Engine(store, clock=clock, worker_timeout=1e6)
    store.close()


@pytest.fixture
def env(engine: Engine) -> Environment:
    env = engine.environments.ensure("proj", "dev", "dev")
    retry = RetryPolicy(max_attempts=3, min_timeout_ms=1000, factor=2, randomize=False)
    engine.workers.register(
        env.id,
        "w1",
        "w1",
        [
            TaskDefinition(id="parent", queue=QueueSpec(name="parent"), retry=retry),
            TaskDefinition(id="child", queue=QueueSpec(name="child"), retry=retry),
        ],
    )
    return env


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


def lease_one(engine: Engine, env: Environment, run_id: str) -> int:
    attempts = {a.run_id: a.attempt for a in engine.workers.lease(env.id, "w1", 10).attempts}
    assert run_id in attempts, attempts
    return attempts[run_id]


def by_name(span: Span) -> dict[str, Span]:
    return {child.name: child for child in span.children}


def test_a_run_with_durable_calls_is_a_tree_of_attempt_step_trigger_wait_and_token_spans(
    engine: Engine, env: Environment, clock: FixedClock
) -> None:
    run_id = engine.tasks.trigger(env.id, "parent", {}).id
    clock.at(1)
    lease_one(engine, env, run_id)
    clock.at(2)
    engine.durable.call(
        env.id,
        run_id,
        JournalCall("step:charge#1", {"paid": True}, started_at=T0 + 1.5),
        **holder(engine, run_id),
    )
    clock.at(3)
    answer = engine.durable.call(
        env.id,
        run_id,
        TriggerCall(
            "trigger_and_wait:child#1",
            [TriggerItem("child", {"n": 1}, {})],
            wait=True,
            batch=False,
        ),
        **holder(engine, run_id),
    )
    child_id = answer["runs"][0]["id"]
    clock.at(4)
    wait = engine.durable.call(
        env.id,
        run_id,
        WaitUntilCall("wait.for#1", T0 + 100),
        **holder(engine, run_id),
    )
    clock.at(5)
    token = engine.durable.call(
        env.id,
        run_id,
        CreateTokenCall("token.create#1"),
        **holder(engine, run_id),
    )
    token_wait = engine.durable.call(
        env.id,
        run_id,
        WaitTokenCall("token.wait#1", token["id"]),
        **holder(engine, run_id),
    )
    engine.durable.suspend(
        "w1",
        run_id,
        1,
        [answer["waitpoint"]["id"], wait["waitpoint"]["id"], token_wait["waitpoint"]["id"]],
        4.0,
        current_fence(engine, run_id),
    )

    waiting = engine.runs.trace(env.id, run_id)
    root = waiting.root
    assert (root.id, root.kind, root.name, root.status, root.end) == (
        run_id,
        "run",
        "parent",
        "open",
        None,
    )
    assert [c.name for c in root.children] == ["attempt 1"]
    attempt = root.children[0]
    assert (attempt.kind, attempt.status, attempt.start, attempt.end, attempt.parent_id) == (
        "attempt",
        "open",
        at(1),
        None,
        run_id,
    )
    calls = by_name(attempt)
    assert list(calls) == [
        "step charge",
        "trigger_and_wait child",
        "wait.for",
        "token.create",
        "token.wait",
    ]
    step = calls["step charge"]
    assert (step.kind, step.start, step.end, step.status, step.parent_id) == (
        "step",
        at(1.5),
        at(2),
        "ok",
        attempt.id,
    )
    trigger = calls["trigger_and_wait child"]
    assert (trigger.kind, trigger.status, trigger.end) == ("trigger", "open", None)
    assert trigger.attributes["run_ids"] == [child_id]
    assert [(c.id, c.kind, c.status, c.parent_id) for c in trigger.children] == [
        (child_id, "run", "open", trigger.id)
    ]
    assert (calls["wait.for"].kind, calls["wait.for"].end, calls["wait.for"].status) == (
        "wait",
        None,
        "open",
    )
    assert (calls["token.create"].kind, calls["token.create"].attributes["token_id"]) == (
        "token",
        token["id"],
    )
    assert (calls["token.wait"].kind, calls["token.wait"].status) == ("wait", "open")

    clock.at(10)
    assert lease_one(engine, env, child_id) == 1
    engine.workers.complete("w1", [held(engine, child_id, 1, "completed", output_json="{}")])
    clock.at(20)
    engine.waitpoints.complete_token(env.id, token["id"], {"approved": True})
    clock.at(101)
    engine.workers.heartbeat("w1", Heartbeat())
    engine.tick()  # the duration passed: the run is queued again and continues attempt 1
    assert lease_one(engine, env, run_id) == 1
    clock.at(110)
    engine.workers.complete("w1", [held(engine, run_id, 1, "completed", output_json="{}")])

    done = engine.runs.trace(env.id, run_id).root
    assert (done.status, done.end) == ("ok", at(110))
    attempt = done.children[0]
    assert (attempt.status, attempt.start, attempt.end) == ("ok", at(1), at(110))
    calls = by_name(attempt)
    assert (calls["trigger_and_wait child"].status, calls["trigger_and_wait child"].end) == (
        "ok",
        at(10),
    )
    assert calls["trigger_and_wait child"].children[0].status == "ok"
    assert (calls["wait.for"].status, calls["wait.for"].end) == (
        "ok",
        at(100),
    )  # the duration, not the tick
    assert (calls["token.wait"].status, calls["token.wait"].end) == ("ok", at(20))


def test_calls_hang_under_the_attempt_that_made_them(
    engine: Engine, env: Environment, clock: FixedClock
) -> None:
    run_id = engine.tasks.trigger(env.id, "parent", {}).id
    clock.at(1)
    lease_one(engine, env, run_id)
    engine.durable.call(env.id, run_id, JournalCall("step:first#1", 1), **holder(engine, run_id))
    clock.at(2)
    engine.workers.complete(
        "w1", [held(engine, run_id, 1, "failed", error={"name": "Boom", "message": "boom"})]
    )
    clock.at(5)  # past the retry delay of 1 s
    assert lease_one(engine, env, run_id) == 2
    clock.at(6)
    engine.durable.call(env.id, run_id, JournalCall("step:second#1", 2), **holder(engine, run_id))

    root = engine.runs.trace(env.id, run_id).root
    first, second = root.children
    assert (first.name, first.status, first.end) == ("attempt 1", "error", at(2))
    assert first.attributes["error"]["message"] == "boom"
    assert [c.name for c in first.children] == ["step first"]
    assert (second.name, second.status, second.end) == ("attempt 2", "open", None)
    assert [c.name for c in second.children] == ["step second"]
    # a step journaled without its start time (an older worker) is a point at its journaling
    assert (second.children[0].start, second.children[0].end) == (at(6), at(6))


def test_a_run_canceled_while_waiting_closes_its_attempt_and_wait_at_the_cancel(
    engine: Engine, env: Environment, clock: FixedClock
) -> None:
    run_id = engine.tasks.trigger(env.id, "parent", {}).id
    clock.at(1)
    lease_one(engine, env, run_id)
    token = engine.waitpoints.create_token(env.id)
    waited = engine.durable.call(
        env.id,
        run_id,
        WaitTokenCall("token.wait#1", token["id"]),
        **holder(engine, run_id),
    )
    engine.durable.suspend(
        "w1", run_id, 1, [waited["waitpoint"]["id"]], 0.5, current_fence(engine, run_id)
    )
    clock.at(30)
    engine.runs.cancel(env.id, run_id)

    root = engine.runs.trace(env.id, run_id).root
    assert (root.status, root.end) == ("canceled", at(30))
    attempt = root.children[0]
    assert (attempt.status, attempt.end) == ("canceled", at(30))
    assert [(c.name, c.status, c.end) for c in attempt.children] == [
        ("token.wait", "canceled", at(30))
    ]


def test_a_run_that_never_started_is_one_open_span(engine: Engine, env: Environment) -> None:
    run_id = engine.tasks.trigger(
        env.id,
        "parent",
        {},
    ).id
    trace = engine.runs.trace(env.id, run_id)
    assert trace.truncated is False
    assert (trace.root.status, trace.root.end, trace.root.children) == ("open", None, [])


def test_trace_route_returns_the_span_tree(api: TestClient, backend: Backend) -> None:
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    backend.engine.durable.call(
        backend.env.id,
        run_id,
        JournalCall("step:s#1", None),
        **holder(backend.engine, run_id),
    )

    response = api.get(f"/api/v1/runs/{run_id}/trace")
    assert response.status_code == 200, response.text
    trace = Trace.model_validate(response.json())
    assert trace.run_id == run_id
    assert [c.kind for c in trace.root.children] == ["attempt"]
    assert [(c.kind, c.name, c.parent_id) for c in trace.root.children[0].children] == [
        ("step", "step s", trace.root.children[0].id)
    ]
    missing = api.get("/api/v1/runs/run_nope/trace")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
