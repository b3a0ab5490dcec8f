"""The durable calls a worker relays for its runs: a call it could not have meant (unknown,
an argument missing or of the wrong type) is a 400 naming the problem, never a 5xx."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from conftest import Backend


@pytest.fixture
def run_id(api: TestClient, backend: Backend) -> str:
    run = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    backend.engine.lease(backend.env.id, "worker-1", 1)
    return str(run)


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("teleport", {}, "unknown call 'teleport'"),
        ("journal", {"value": 1}, "needs the argument 'key'"),
        ("journal", {"key": 7, "value": 1}, "argument 'key' has the wrong type"),
        (
            "wait_until",
            {"key": "wait.for#1", "until": "soon"},
            "argument 'until' has the wrong type",
        ),
        (
            "wait_until",
            {"key": "wait.for#1", "until": 1.0, "seconds": "9"},
            "argument 'seconds' has the wrong type",
        ),
        (
            "durable_trigger",
            {"key": "trigger:x#1", "items": [["hello"]], "wait": False, "batch": False},
            "items[0] must be [task_id, payload, options]",
        ),
        (
            "create_token",
            {"key": "token.create#1", "timeout": "1h", "idempotency_key": None, "tags": None},
            "argument 'timeout' has the wrong type",
        ),
    ],
)
def test_a_malformed_call_is_a_clear_400(
    api: TestClient, run_id: str, op: str, args: dict[str, Any], message: str
) -> None:
    response = api.post(
        "/api/v1/workers/worker-1/calls",
        json={"run_id": run_id, "fence": 1, "op": op, "args": args},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert message in response.json()["error"]["message"]


def test_a_wellformed_call_is_answered(api: TestClient, run_id: str) -> None:
    response = api.post(
        "/api/v1/workers/worker-1/calls",
        json={
            "run_id": run_id,
            "fence": 1,
            "op": "journal",
            "args": {"key": "step:s#1", "value": {"v": 1}},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": {"v": 1}}
