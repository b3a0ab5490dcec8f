"""Values a run carries have limits with clear 4xx errors, so no stored value can break a page or
an answer later: nesting (64 levels), and text that is Unicode (no lone surrogate). Checked where
values enter: the HTTP API (payload, metadata, options, token data, a worker's calls), the
engine (for the in-process worker) and the SDK before it sends anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from conveyor.errors import PayloadError
from conveyor.protocol import Heartbeat, JournalCall
from conveyor.serialization import MAX_DEPTH, dumps, json_problem
from tests.integration.conftest import holder

if TYPE_CHECKING:
    from conftest import Backend


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


def error_of(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return str(response.json()["error"]["message"])


def test_a_payload_may_nest_64_levels_and_every_read_shows_it(api: TestClient) -> None:
    response = api.post("/api/v1/tasks/hello/trigger", json={"payload": nested(MAX_DEPTH)})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["payload"] == nested(MAX_DEPTH)
    assert api.get("/api/v1/runs").status_code == 200
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 5000])
def test_a_deeper_payload_is_refused_and_stores_nothing(
    api: TestClient, backend: Backend, levels: int
) -> None:
    response = (
        api.post("/api/v1/tasks/hello/trigger", json={"payload": nested(levels)})
        if levels < 900
        else api.post(
            "/api/v1/tasks/hello/trigger",
            content=b'{"payload": ' + b"[" * levels + b"]" * levels + b"}",
            headers={"Content-Type": "application/json"},
        )
    )
    message = error_of(
        response, 422, "payload_invalid" if levels == MAX_DEPTH + 1 else "invalid_request"
    )
    assert f"{MAX_DEPTH} levels" in message
    assert backend.engine.runs.list(backend.env.id)[0] == []
    assert api.get("/api/v1/runs").status_code == 200


@pytest.mark.parametrize("where", ["payload", "metadata", "tags", "concurrency_key", "batch"])
def test_a_lone_surrogate_is_refused_wherever_it_is(
    api: TestClient, backend: Backend, where: str
) -> None:
    bad = '"a\\ud800b"'  # JSON text may escape a lone surrogate; Python's json accepts it
    body = {
        "payload": '{"payload": BAD}',
        "metadata": '{"payload": 1, "options": {"metadata": {"k": BAD}}}',
        "tags": '{"payload": 1, "options": {"tags": [BAD]}}',
        "concurrency_key": '{"payload": 1, "options": {"concurrency_key": BAD}}',
        "batch": '{"items": [{"payload": 1}, {"payload": {"x": BAD}}]}',
    }[where].replace("BAD", bad)
    path = "/api/v1/tasks/hello/batch" if where == "batch" else "/api/v1/tasks/hello/trigger"
    response = api.post(path, content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "lone surrogate" in response.json()["error"]["message"]
    assert backend.engine.runs.list(backend.env.id)[0] == []


def test_token_data_has_the_same_limits(api: TestClient) -> None:
    token = api.post("/api/v1/waitpoints/tokens", json={}).json()
    deep = api.post(
        f"/api/v1/waitpoints/tokens/{token['id']}/complete", json={"data": nested(MAX_DEPTH + 1)}
    )
    assert f"{MAX_DEPTH} levels" in error_of(deep, 422, "payload_invalid")
    ok = api.post(
        f"/api/v1/waitpoints/tokens/{token['id']}/complete", json={"data": nested(MAX_DEPTH)}
    )
    assert ok.status_code == 200, ok.text
    assert api.get("/api/v1/waitpoints/tokens").status_code == 200


def test_a_step_value_too_deep_is_refused_by_the_engine(backend: Backend) -> None:
    engine, env = backend.engine, backend.env
    run = engine.tasks.trigger(env.id, "hello", {})
    engine.workers.heartbeat("worker-1", Heartbeat())
    (spec,) = engine.workers.lease(env.id, "worker-1", 1).attempts
    with pytest.raises(PayloadError, match=f"{MAX_DEPTH} levels"):
        engine.durable.call(
            env.id,
            run.id,
            JournalCall("step:a#1", nested(MAX_DEPTH + 1)),
            **holder(engine, run.id),
        )
    assert engine.durable.call(
        env.id, run.id, JournalCall("step:a#1", nested(3)), **holder(engine, run.id)
    ) == nested(3)
    assert spec.run_id == run.id


def test_the_sdk_refuses_before_sending() -> None:
    with pytest.raises(PayloadError, match=f"payload is nested more than {MAX_DEPTH} levels"):
        dumps(nested(MAX_DEPTH + 1))
    with pytest.raises(PayloadError, match=r"payload\.k holds a lone surrogate"):
        dumps({"k": "a\ud800"})
    with pytest.raises(PayloadError, match="a key"):
        dumps({"\udc00": 1})
    assert dumps(nested(MAX_DEPTH)).count("[") == MAX_DEPTH // 2
    assert json_problem(nested(100_000)) is not None  # no recursion: any depth is safe to check


def test_a_log_line_with_unshowable_parts_is_kept_and_shown(
    api: TestClient, backend: Backend
) -> None:
    from conveyor.protocol import LogEntry

    engine, env = backend.engine, backend.env
    run = engine.tasks.trigger(env.id, "hello", {})
    engine.workers.heartbeat("worker-1", Heartbeat())
    engine.workers.lease(env.id, "worker-1", 1)
    fence = holder(engine, run.id)["fence"]
    stored = engine.workers.append_logs(
        [
            LogEntry(run.id, 1, 1, 1.0, "info", "deep", {"a": nested(MAX_DEPTH + 5)}, fence=fence),
            LogEntry(
                run.id, 1, 2, 2.0, "info", "half \ud800 a character", {"k": "\udfff"}, fence=fence
            ),
        ]
    )
    assert stored == 2
    lines = api.get(f"/api/v1/runs/{run.id}/logs").json()["data"]
    assert [line["message"] for line in lines] == ["deep", "half ? a character"]
    assert f"{MAX_DEPTH} levels" in lines[0]["attributes"]["attributes_dropped"]
    assert "lone surrogate" in lines[1]["attributes"]["attributes_dropped"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("heartbeat", {"running": [["run_x", False]], "lease_seq": 0}),
        ("hooks", {"done": [["run_x", "on_success", False]]}),
        (
            "complete",
            {"outcomes": [{"run_id": "r", "attempt": 1, "kind": "failed", "fence": False}]},
        ),
        (
            "logs",
            {
                "entries": [
                    {
                        "run_id": "r",
                        "attempt": True,
                        "seq": 1,
                        "ts": 1.0,
                        "level": "info",
                        "message": "m",
                    }
                ]
            },
        ),
        ("register", {"name": "w", "deployed": 0}),
    ],
)
def test_the_worker_protocol_takes_json_numbers_and_booleans_only(
    api: TestClient, path: str, body: dict[str, Any]
) -> None:
    worker = api.post("/api/v1/workers/w-types/register", json={"name": "w"})
    assert worker.status_code == 200, worker.text
    reply = api.post(f"/api/v1/workers/w-types/{path}", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == "invalid_request"


def test_a_path_with_an_empty_last_parameter_is_not_found_rather_than_redirected(
    api: TestClient,
) -> None:
    reply = api.get("/api/v1/tasks/", follow_redirects=False)
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", [False, True, "5", 2.5])
def test_a_queue_limit_is_a_json_integer_or_null(api: TestClient, limit: Any) -> None:
    before = api.post("/api/v1/queues/media/encode/concurrency", json={"concurrency_limit": 4})
    assert before.status_code == 200, before.text
    refused = api.post("/api/v1/queues/media/encode/concurrency", json={"concurrency_limit": limit})
    assert refused.status_code == 422, refused.text
    assert "concurrency_limit" in refused.text
    assert api.get("/api/v1/queues/media/encode").json()["concurrency_limit"] == 4  # unchanged
