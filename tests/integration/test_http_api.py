"""The HTTP API over a real SQLite store: triggering, batches, idempotency, schema checks,
authentication, and the error shape for bad input (never a 5xx)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from conveyor.server import create_app

if TYPE_CHECKING:
    from conftest import Backend


def error_of(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def run_count(backend: Backend) -> int:
    runs, _ = backend.engine.runs.list(backend.env.id, limit=1000)
    return len(runs)


# -- triggering -------------------------------------------------------------------------------


def test_trigger_creates_a_queued_run_that_can_be_retrieved(api: TestClient) -> None:
    response = api.post(
        "/api/v1/tasks/hello/trigger",
        json={"payload": {"name": "Ada"}, "options": {"tags": ["a", "b"], "metadata": {"k": 1}}},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("run_")
    assert body["is_cached"] is False

    run = api.get(f"/api/v1/runs/{body['id']}").json()
    assert run["id"] == body["id"]
    assert run["task_id"] == "hello"
    assert run["status"] == "QUEUED"
    assert run["payload"] == {"name": "Ada"}
    assert run["tags"] == ["a", "b"]
    assert run["metadata"] == {"k": 1}
    assert run["attempts"] == 0
    assert run["attempt_list"] == []
    assert run["queue"] == "task/hello"
    for field in ("output", "error", "parent_id", "created_at", "started_at", "completed_at"):
        assert field in run


def test_trigger_options_are_applied(api: TestClient) -> None:
    body = {
        "payload": None,
        "options": {
            "delay": "1h",
            "priority": 30,
            "max_attempts": 7,
            "machine": "large-1x",
            "queue": {"name": "custom/q", "concurrency_limit": 3},
            "concurrency_key": "tenant-1",
        },
    }
    run_id = api.post("/api/v1/tasks/hello/trigger", json=body).json()["id"]
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "DELAYED"
    assert run["delayed_until"] is not None
    assert (run["priority"], run["max_attempts"], run["machine"]) == (30, 7, "large-1x")
    assert (run["queue"], run["concurrency_key"]) == ("custom/q", "tenant-1")
    queue = api.get("/api/v1/queues/custom/q").json()
    assert queue["concurrency_limit"] == 3
    # another limit for that queue is refused, not stored over the one its runs share
    body["options"]["queue"] = {"name": "custom/q", "concurrency_limit": 30}
    refused = api.post("/api/v1/tasks/hello/trigger", json=body)
    assert refused.status_code == 409, refused.text
    assert "has concurrency_limit 3" in refused.json()["error"]["message"]
    assert api.get("/api/v1/queues/custom/q").json()["concurrency_limit"] == 3


def test_batch_of_fifty_creates_fifty_runs_in_input_order(
    api: TestClient, backend: Backend
) -> None:
    items = [{"payload": {"n": n}, "options": {"tags": [f"n{n}"]}} for n in range(50)]
    response = api.post("/api/v1/tasks/hello/batch", json={"items": items})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["batch_id"].startswith("batch_")
    assert len(body["runs"]) == 50
    assert len({r["id"] for r in body["runs"]}) == 50
    for n in (0, 17, 49):
        run = api.get(f"/api/v1/runs/{body['runs'][n]['id']}").json()
        assert run["payload"] == {"n": n}
        assert run["batch_id"] == body["batch_id"]
    assert run_count(backend) == 50


def test_a_batch_with_one_invalid_item_creates_nothing_and_names_the_item(
    api: TestClient, backend: Backend
) -> None:
    items = [{"payload": {"video_url": "https://x/1.mp4"}}, {"payload": {"format": "mp4"}}]
    message = error_of(
        api.post("/api/v1/tasks/process-video/batch", json={"items": items}), 422, "payload_invalid"
    )
    assert "items[1]" in message
    assert "video_url" in message
    assert run_count(backend) == 0


def test_batch_size_is_bounded(api: TestClient) -> None:
    assert "items" in error_of(
        api.post("/api/v1/tasks/hello/batch", json={"items": []}), 422, "invalid_request"
    )
    too_many = {"items": [{"payload": i} for i in range(1001)]}
    assert "items" in error_of(
        api.post("/api/v1/tasks/hello/batch", json=too_many), 422, "invalid_request"
    )


def test_idempotency_key_returns_the_same_run(api: TestClient, backend: Backend) -> None:
    body = {"payload": {"a": 1}, "options": {"idempotency_key": "order-42"}}
    first = api.post("/api/v1/tasks/hello/trigger", json=body)
    second = api.post("/api/v1/tasks/hello/trigger", json={**body, "payload": {"a": 2}})
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["is_cached"] is True
    assert run_count(backend) == 1
    other = api.post(
        "/api/v1/tasks/hello/trigger",
        json={"payload": {}, "options": {"idempotency_key": "order-43"}},
    )
    assert other.json()["id"] != first.json()["id"]


def test_reset_releases_an_idempotency_key(api: TestClient, backend: Backend) -> None:
    body = {"payload": {}, "options": {"idempotency_key": "order-44"}}
    first = api.post("/api/v1/tasks/hello/trigger", json=body).json()["id"]
    reset = "/api/v1/tasks/hello/idempotency-keys/reset"
    assert api.post(reset, json={"key": "order-44"}).json() == {"released": True}
    assert api.post(reset, json={"key": "order-44"}).json() == {"released": False}
    again = api.post("/api/v1/tasks/hello/trigger", json=body)
    assert again.status_code == 201 and again.json()["id"] != first
    for bad in ({}, {"key": ""}, {"key": 7}, {"key": "k", "task": "x"}):
        answer = api.post(reset, json=bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": -1}, "options.priority"),
        ({"machine": "enormous"}, "options.machine"),
        ({"max_attempts": 0}, "options.max_attempts"),
        ({"tags": [f"t{i}" for i in range(11)]}, "options.tags"),
        ({"delay": "soonish"}, "options.delay"),
        ({"prioritty": 3}, "options.prioritty"),
    ],
)
def test_an_invalid_option_is_a_422_naming_it(
    api: TestClient, backend: Backend, options: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}, "options": options})
    message = error_of(response, 422, "invalid_request")
    assert message.startswith(field + ":"), message
    assert run_count(backend) == 0


def test_priority_message_says_what_is_wrong(api: TestClient) -> None:
    response = api.post(
        "/api/v1/tasks/hello/trigger", json={"payload": {}, "options": {"priority": -1}}
    )
    assert (
        error_of(response, 422, "invalid_request")
        == "options.priority: Input should be greater than or equal to 0"
    )


def test_an_unknown_top_level_key_is_refused(api: TestClient) -> None:
    response = api.post(
        "/api/v1/tasks/hello/trigger", json={"payload": {}, "option": {"priority": 1}}
    )
    assert error_of(response, 422, "invalid_request").startswith("option:")


def test_malformed_json_is_a_400(api: TestClient, backend: Backend) -> None:
    response = api.post(
        "/api/v1/tasks/hello/trigger",
        content=b'{"payload": ',
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in error_of(response, 400, "malformed_json")
    assert run_count(backend) == 0


def test_json_under_another_content_type_is_a_415(api: TestClient) -> None:
    response = api.post(
        "/api/v1/tasks/hello/trigger",
        content=b'{"payload": 1}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "Content-Type: application/json" in error_of(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_a_body_that_is_not_an_object_is_a_422(api: TestClient, body: Any) -> None:
    error_of(api.post("/api/v1/tasks/hello/trigger", json=body), 422, "invalid_request")


def test_unknown_task_is_a_404(api: TestClient) -> None:
    message = error_of(
        api.post("/api/v1/tasks/nope/trigger", json={"payload": {}}), 404, "not_found"
    )
    assert "'nope'" in message
    error_of(api.get("/api/v1/tasks/nope"), 404, "not_found")
    error_of(
        api.post("/api/v1/tasks/nope/batch", json={"items": [{"payload": 1}]}), 404, "not_found"
    )


def test_payload_failing_the_task_schema_is_a_422_naming_the_field_and_creates_no_run(
    api: TestClient, backend: Backend
) -> None:
    response = api.post(
        "/api/v1/tasks/process-video/trigger",
        json={"payload": {"video_url": "https://x/v.mp4", "format": "avi"}},
    )
    message = error_of(response, 422, "payload_invalid")
    assert "format" in message
    assert "process-video" in message
    response = api.post("/api/v1/tasks/process-video/trigger", json={"payload": {"format": "mp4"}})
    assert "video_url" in error_of(response, 422, "payload_invalid")
    assert run_count(backend) == 0
    ok = api.post(
        "/api/v1/tasks/process-video/trigger", json={"payload": {"video_url": "https://x/v.mp4"}}
    )
    assert ok.status_code == 201
    assert run_count(backend) == 1


def test_unknown_route_and_wrong_method_answer_json(api: TestClient) -> None:
    assert "/api/v1/nothing" in error_of(api.get("/api/v1/nothing"), 404, "not_found")
    response = api.delete("/api/v1/runs")
    assert "GET" in error_of(response, 405, "method_not_allowed")
    error_of(api.get("/api/v1/tasks/hello/trigger"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/waitpoints/tokens", "GET, POST"),
        ("/api/v1/deployments", "GET, POST"),
        ("/api/v1/projects", "GET, POST"),
        ("/api/v1/runs/run_x", "GET"),
        ("/api/v1/tasks/hello/trigger", "POST"),
        ("/api/v1/queues/task/hello/pause", "POST"),
        ("/api/v1/queues/task/hello", "GET"),
    ],
)
def test_a_wrong_method_lists_every_method_of_the_path(
    api: TestClient, path: str, allowed: str
) -> None:
    response = api.request("PATCH", path)
    assert allowed in error_of(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed


def test_an_unknown_query_parameter_is_refused_naming_it(api: TestClient) -> None:
    message = error_of(api.get("/api/v1/runs", params={"stauts": "FAILED"}), 422, "invalid_request")
    assert "'stauts'" in message and "status" in message
    assert api.get("/api/v1/runs", params={"status": "FAILED,queued"}).status_code == 200
    error_of(api.get("/api/v1/runs", params={"status": "Failed"}), 422, "invalid_request")
    error_of(api.get("/api/v1/runs", params={"cursor": ""}), 422, "invalid_request")
    error_of(
        api.get("/api/v1/waitpoints/tokens", params={"status": "LPT1"}), 422, "invalid_request"
    )
    assert "more than once" in error_of(
        api.get("/api/v1/runs?task=a&task=b"), 422, "invalid_request"
    )
    assert api.get("/api/v1/runs?status=FAILED&status=QUEUED").status_code == 200
    assert "ISO 8601" in error_of(api.get("/api/v1/runs?created_to=0.5"), 422, "invalid_request")


def test_an_unexpected_error_is_a_logged_500_in_the_error_shape(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(backend.engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    message = error_of(response, 500, "internal_error")
    assert "kaboom" not in message  # internals stay in the log
    assert any(
        "kaboom" in (r.exc_text or "") or (r.exc_info and "kaboom" in str(r.exc_info[1]))
        for r in caplog.records
    )


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic cv_dev_key"},
    ],
)
def test_missing_key_is_a_401(backend: Backend, headers: dict[str, str]) -> None:
    with TestClient(create_app(backend.engine)) as client:
        for method, path in (
            ("GET", "/api/v1/tasks"),
            ("GET", "/api/v1/runs"),
            ("POST", "/api/v1/tasks/hello/trigger"),
            ("GET", "/api/v1/queues"),
        ):
            response = client.request(method, path, headers=headers, json={"payload": {}})
            assert "missing API key" in error_of(response, 401, "unauthorized")


def test_wrong_key_is_a_401_and_triggers_nothing(backend: Backend) -> None:
    with TestClient(
        create_app(backend.engine), headers={"Authorization": "Bearer cv_dev_wrong"}
    ) as client:
        response = client.post("/api/v1/tasks/hello/trigger", json={"payload": {}})
        assert "unknown API key" in error_of(response, 401, "unauthorized")
    assert run_count(backend) == 0


def test_health_and_openapi_need_no_key(backend: Backend) -> None:
    with TestClient(create_app(backend.engine)) as client:
        assert client.get("/healthz").json() == {"ok": True}
        assert client.get("/readyz").json() == {"ok": True}  # the database answers
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_a_key_sees_nothing_of_another_environment(api: TestClient, backend: Backend) -> None:
    other_key = backend.other_environment()
    run_id = api.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
    with TestClient(
        create_app(backend.engine), headers={"Authorization": f"Bearer {other_key}"}
    ) as client:
        error_of(client.get(f"/api/v1/runs/{run_id}"), 404, "not_found")
        error_of(client.post(f"/api/v1/runs/{run_id}/cancel"), 404, "not_found")
        assert client.get("/api/v1/runs").json() == {"data": [], "next_cursor": None}
        assert client.get("/api/v1/tasks").json() == {"data": []}
        # staging has no version defining `hello`: its run waits there for a deploy, apart from A's
        theirs = client.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).json()["id"]
        assert client.get(f"/api/v1/runs/{theirs}").json()["status"] == "PENDING_VERSION"
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "QUEUED"
    error_of(api.get(f"/api/v1/runs/{theirs}"), 404, "not_found")


# -- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_lists_every_route_with_its_bodies_and_responses(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        "/api/v1/tasks/{task_id}/trigger": "post",
        "/api/v1/tasks/{task_id}/batch": "post",
        "/api/v1/tasks": "get",
        "/api/v1/tasks/{task_id}": "get",
        "/api/v1/runs": "get",
        "/api/v1/runs/{run_id}": "get",
        "/api/v1/runs/{run_id}/logs": "get",
        "/api/v1/runs/{run_id}/cancel": "post",
        "/api/v1/runs/{run_id}/replay": "post",
        "/api/v1/queues": "get",
        "/api/v1/queues/{name}": "get",
        "/api/v1/queues/{name}/pause": "post",
        "/api/v1/queues/{name}/resume": "post",
        "/api/v1/queues/{name}/concurrency": "post",
        "/healthz": "get",
        "/readyz": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from OpenAPI"
    trigger = paths["/api/v1/tasks/{task_id}/trigger"]["post"]
    assert trigger["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TriggerBody"
    )
    assert trigger["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Triggered"
    )
    assert trigger["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    schemas = doc["components"]["schemas"]
    assert "priority" in schemas["TriggerOptions"]["properties"]
    assert set(schemas["RunList"]["properties"]) == {"data", "next_cursor"}
    run_get = paths["/api/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert run_get["$ref"].endswith("/Run")
    assert {"attempts", "attempt_list", "status", "payload"} <= set(schemas["Run"]["properties"])
    list_params = {p["name"] for p in paths["/api/v1/runs"]["get"]["parameters"]}
    assert {"status", "task", "tag", "limit", "cursor", "created_from", "created_to"} <= list_params
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
