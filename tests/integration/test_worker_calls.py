"""The durable calls a worker relays for its runs are typed messages (conveyor/protocol.py): a
call it could not have meant (an unknown op, a field missing, unknown or of the wrong type, a
malformed trigger item) is refused naming the field and changes nothing, never a 5xx; and every
message arrives at the engine as the worker built it."""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from conveyor.client import _calls as calls
from conveyor.errors import InvalidRequest, NotFound, StaleAttempt
from conveyor.platform.link import LocalLink
from conveyor.protocol import (
    CompleteTokenCall,
    CreateTokenCall,
    DurableCall,
    JournalCall,
    MetadataOp,
    TriggerCall,
    TriggerItem,
    WaitTokenCall,
    WaitUntilCall,
)
from conveyor.server.api.workers import CallBody

if TYPE_CHECKING:
    from conftest import Backend

CALLS = "/api/v1/workers/worker-1/calls"


@pytest.fixture
def run_id(api: TestClient, backend: Backend) -> str:
    run = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    return str(run)


def trigger(**changes: Any) -> dict[str, Any]:
    args = {"key": "trigger:x#1", "items": [["hello", {}, {}]], "wait": False, "batch": False}
    return {**args, **changes}


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("teleport", {}, "does not match any of the expected tags: 'journal'"),
        ("journal", {"value": 1}, "journal.args.key: required"),
        ("journal", {"key": 7, "value": 1}, "journal.args.key: Input should be a valid string"),
        ("journal", {"key": "k", "value": 1, "colour": 1}, "journal.args.colour: unknown field"),
        (
            "journal",
            {"key": "k", "value": 1, "op": "journal"},
            "`op` goes next to `args`, not inside it",
        ),
        (
            "wait_until",
            {"key": "wait.for#1", "until": "soon"},
            "wait_until.args.until: Input should be a valid number",
        ),
        (
            "wait_until",
            {"key": "wait.for#1", "until": True},
            "wait_until.args.until: Input should be a valid number",
        ),
        (
            "wait_until",
            {"key": "wait.for#1", "until": 1.0, "seconds": "9"},
            "wait_until.args.seconds: Input should be a valid number",
        ),
        (
            "durable_trigger",
            trigger(items=[["hello"]]),
            "durable_trigger.args.items[0][1]: required",
        ),
        (
            "durable_trigger",
            trigger(items=[[7, {}, {}]]),
            "durable_trigger.args.items[0][0]: Input should be a valid string",
        ),
        (
            "durable_trigger",
            trigger(items=[["hello", {}, []]]),
            "durable_trigger.args.items[0][2]: must be an object of fields, not list",
        ),
        ("durable_trigger", trigger(wait=1), "durable_trigger.args.wait: Input should be a valid"),
        ("durable_trigger", trigger(batch="yes"), "durable_trigger.args.batch: Input should be"),
        (
            "create_token",
            {"key": "token.create#1", "timeout": "1h"},
            "create_token.args.timeout: Input should be a valid number",
        ),
        (
            "create_token",
            {"key": "token.create#1", "timeout": False},
            "create_token.args.timeout: Input should be a valid number",
        ),
        ("wait_token", {"key": "token.wait#1"}, "wait_token.args.token_id: required"),
        ("complete_token", {"key": "k", "token_id": "t"}, "complete_token.args.data: required"),
    ],
)
def test_a_malformed_call_is_refused_naming_the_field(
    api: TestClient, backend: Backend, run_id: str, op: str, args: dict[str, Any], message: str
) -> None:
    before = api.get(f"/api/v1/runs/{run_id}/trace").json()
    response = api.post(CALLS, json={"run_id": run_id, "fence": 1, "op": op, "args": args})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert message in response.json()["error"]["message"]
    assert api.get(f"/api/v1/runs/{run_id}/trace").json() == before
    assert len(api.get("/api/v1/runs").json()["data"]) == 1  # no child was triggered


def test_a_call_without_an_op_is_refused(api: TestClient, run_id: str) -> None:
    response = api.post(CALLS, json={"run_id": run_id, "fence": 1, "args": {"key": "k"}})
    assert response.status_code == 422, response.text
    assert "op" in response.json()["error"]["message"]


def test_a_wellformed_call_is_answered(api: TestClient, run_id: str) -> None:
    response = api.post(
        CALLS,
        json={
            "run_id": run_id,
            "fence": 1,
            "op": "journal",
            "args": {"key": "step:s#1", "value": {"v": 1}},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": {"v": 1}}


MESSAGES: list[DurableCall] = [
    JournalCall("step:charge#1", {"amount": [1, 2.5, None, "€"]}, started_at=1_700_000_000.25),
    JournalCall("now#1", "2026-12-05T21:00:00+00:00"),
    TriggerCall(
        "trigger_and_wait:resize#1",
        [
            TriggerItem("resize", {"w": 10}, {"tags": ["a"], "delay": "1h"}),
            TriggerItem("resize", None, {}),
        ],
        wait=True,
        batch=True,
    ),
    WaitUntilCall("wait.for#1", 1_700_000_000.5, seconds=90),
    WaitUntilCall("wait.until#1", 1_700_000_000),
    CreateTokenCall("token.create#1", 3600.0, "approve-42", ["approval"]),
    CreateTokenCall("token.create#2"),
    WaitTokenCall("token.wait#1", "token_abc"),
    CompleteTokenCall("token.complete#1", "token_abc", {"approved": True}),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.op)
def test_each_call_arrives_as_the_worker_built_it(message: DurableCall) -> None:
    """Encoded by the worker's client, sent as JSON, decoded by the route's body type."""
    body = calls.run_call("worker-1", "run_1", 3, message).body
    decoded = TypeAdapter(CallBody).validate_json(json.dumps(body))
    assert (decoded.run_id, decoded.fence) == ("run_1", 3)
    assert decoded.args == message
    assert type(decoded.args) is type(message)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.op)
def test_each_call_crosses_the_executor_channel_unchanged(message: DurableCall) -> None:
    """From the executor to its supervisor a call is pickled (conveyor/worker/channel.py)."""
    assert pickle.loads(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)) == message


def test_the_in_process_link_refuses_nonsense_like_the_route(backend: Backend) -> None:
    """In `conveyor dev` the message made in the executor reaches the engine as it is: checked."""
    link = LocalLink(backend.engine, backend.env.id)
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {})
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    link.worker_id = "worker-1"
    bad: list[Any] = [
        JournalCall(7, 1),  # type: ignore[arg-type]
        WaitUntilCall("wait.for#1", True),
        TriggerCall("trigger:x#1", [("hello",)], wait=False, batch=False),  # type: ignore[list-item]
        CreateTokenCall("token.create#1", timeout="1h"),  # type: ignore[arg-type]
        {"op": "teleport"},
        object(),
    ]
    before = backend.engine.runs.trace(backend.env.id, run.id)
    for call in bad:
        with pytest.raises(InvalidRequest, match="invalid durable call"):
            asyncio.run(link.call(run.id, 1, call))
    assert backend.engine.runs.trace(backend.env.id, run.id) == before
    assert asyncio.run(link.call(run.id, 1, JournalCall("step:s#1", 5))) == 5


METADATA = "/api/v1/workers/worker-1/metadata"


def test_metadata_flushes_of_many_runs_go_in_one_request_each_answered(
    api: TestClient, backend: Backend, run_id: str
) -> None:
    other = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    body = calls.metadata_flushes(
        "worker-1",
        [
            (run_id, 1, [MetadataOp(1, "self", "set", "progress", 0.5)]),
            (other, 7, [MetadataOp(1, "self", "set", "progress", 0.9)]),  # not its attempt
            ("run_missing", 1, [MetadataOp(1, "self", "set", "progress", 1)]),
            (run_id, 1, [MetadataOp(2, "self", "increment", "progress", "x")]),
        ],
    ).body
    response = api.post(METADATA, json=body)
    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert answers[0] == {"result": {"applied": 1, "refused": []}, "error": None}
    assert answers[1]["error"]["code"] == "attempt_stale"
    assert answers[2]["error"]["code"] == "not_found"
    assert "the amount must be a number" in answers[3]["result"]["refused"][0]
    assert api.get(f"/api/v1/runs/{run_id}").json()["metadata"] == {"progress": 0.5}
    assert api.get(f"/api/v1/runs/{other}").json()["metadata"] == {}
    # the worker's client turns each answer into its result or its error
    parsed = calls.metadata_flushes("worker-1", []).parse(response.json())
    assert parsed[0] == {"applied": 1, "refused": []}
    assert isinstance(parsed[1], StaleAttempt) and isinstance(parsed[2], NotFound)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"flushes": []}, "flushes: List should have at least 1 item"),
        ({"flushes": [{"run_id": "r", "fence": 1}]}, "ops: required"),
        (
            {"flushes": [{"run_id": "r", "fence": 1, "ops": [[1, "sibling", "set", "k", 1]]}]},
            "ops[0][1]",
        ),
        ({"flushes": [{"run_id": "r", "fence": -1, "ops": []}]}, "fence"),
    ],
)
def test_a_malformed_metadata_batch_is_refused_and_changes_nothing(
    api: TestClient, run_id: str, body: dict[str, Any], message: str
) -> None:
    response = api.post(METADATA, json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["metadata"] == {}


def test_the_in_process_link_answers_each_flush_and_refuses_nonsense_alone(
    backend: Backend,
) -> None:
    link = LocalLink(backend.engine, backend.env.id)
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {})
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    link.worker_id = "worker-1"
    answers = asyncio.run(
        link.metadata(
            [
                (run.id, 1, [("1", "self", "set", "k", 1)]),  # type: ignore[list-item]
                (run.id, 1, [MetadataOp(1, "self", "set", "k", 2)]),
            ]
        )
    )
    assert isinstance(answers[0], InvalidRequest)
    assert answers[1] == {"applied": 1, "refused": []}
    assert backend.engine.runs.get(backend.env.id, run.id).metadata == {"k": 2}


@pytest.mark.parametrize(
    ("retry_at", "message"),
    [
        (True, "retry_at must be a number, not bool"),
        ("2030-01-01T00:00:00Z", "retry_at must be a number, not str"),
    ],
)
def test_an_outcome_s_retry_at_is_a_number(
    api: TestClient, run_id: str, retry_at: Any, message: str
) -> None:
    outcome = {"run_id": run_id, "attempt": 1, "kind": "failed", "fence": 1, "retry_at": retry_at}
    response = api.post("/api/v1/workers/worker-1/complete", json={"outcomes": [outcome]})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "EXECUTING"
