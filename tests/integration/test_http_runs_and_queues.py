"""The HTTP API's run and queue routes over a real SQLite store: listing with filters and
cursor pagination, retrieve with attempts, logs, cancel, replay, and queue controls."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi.testclient import TestClient

from conveyor.protocol import LogEntry
from tests.integration.conftest import held

if TYPE_CHECKING:
    from conftest import Backend


def trigger(api: TestClient, task: str = "hello", payload: Any = None, **options: Any) -> str:
    response = api.post(
        f"/api/v1/tasks/{task}/trigger", json={"payload": payload, "options": options}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["data"]]


def fail_one(backend: Backend, task: str = "hello") -> str:
    """Lease one run and report it failed (the task's policy allows one attempt)."""
    reply = backend.engine.workers.lease(backend.env.id, "worker-1", capacity=1)
    (spec,) = reply.attempts
    assert spec.task_id == task
    backend.engine.workers.complete(
        "worker-1",
        [
            held(
                backend.engine,
                spec.run_id,
                spec.attempt,
                "failed",
                error={"name": "ValueError", "message": "bad input"},
            )
        ],
    )
    return spec.run_id


# -- listing ----------------------------------------------------------------------------------


def test_cursor_pagination_walks_every_run_once_newest_first(api: TestClient) -> None:
    made = [trigger(api, payload={"n": n}) for n in range(25)]
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/api/v1/runs", params=params)
        pages.append(ids(response))
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    walked = [run_id for page in pages for run_id in page]
    assert walked == list(reversed(made))


def test_list_filters_by_task_tag_and_status(api: TestClient, backend: Backend) -> None:
    a = trigger(api, "hello", tags=["red"])
    b = trigger(api, "other", tags=["red", "blue"])
    c = trigger(api, "hello", tags=["blue"])
    api.post(f"/api/v1/runs/{c}/cancel")

    assert set(ids(api.get("/api/v1/runs", params={"task": "hello"}))) == {a, c}
    assert set(ids(api.get("/api/v1/runs", params={"tag": "red"}))) == {a, b}
    assert (
        set(ids(api.get("/api/v1/runs", params={"tag": "re"}))) == set()
    )  # a tag is matched whole
    assert set(ids(api.get("/api/v1/runs", params={"status": "CANCELED"}))) == {c}
    assert set(ids(api.get("/api/v1/runs", params={"task": "hello", "tag": "red"}))) == {a}

    failed = fail_one(backend)
    assert failed == a  # the oldest queued run of the queue is leased first
    both = {"status": "FAILED,CANCELED"}
    assert set(ids(api.get("/api/v1/runs", params=both))) == {a, c}
    repeated = [("status", "FAILED"), ("status", "CANCELED")]
    assert set(ids(api.get("/api/v1/runs", params=repeated))) == {a, c}
    assert set(ids(api.get("/api/v1/runs", params={"status": "queued"}))) == {b}


def test_list_filters_by_creation_time(api: TestClient, backend: Backend) -> None:
    early = trigger(api)
    backend.clock.advance(3600)
    middle_time = datetime.fromtimestamp(backend.clock(), tz=UTC)
    late = trigger(api)
    assert ids(api.get("/api/v1/runs", params={"created_from": middle_time.isoformat()})) == [late]
    assert ids(api.get("/api/v1/runs", params={"created_to": middle_time.isoformat()})) == [early]
    naive = middle_time.replace(tzinfo=None).isoformat()  # read as UTC
    assert ids(api.get("/api/v1/runs", params={"created_from": naive})) == [late]


def test_bad_list_parameters_are_4xx_naming_them(api: TestClient) -> None:
    response = api.get("/api/v1/runs", params={"status": "QUEUED,SLEEPING"})
    assert response.status_code == 422
    assert "unknown status 'SLEEPING'" in response.json()["error"]["message"]
    for params, name in (
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"created_from": "yesterday"}, "created_from"),
    ):
        response = api.get("/api/v1/runs", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["message"].startswith(f"query parameter {name}:")


# -- one run ----------------------------------------------------------------------------------


def test_retrieve_shows_attempts_and_the_error(api: TestClient, backend: Backend) -> None:
    run_id = trigger(api, payload={"x": 1})
    fail_one(backend)
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "FAILED"
    assert run["attempts"] == 1
    assert run["error"]["message"] == "bad input"
    assert len(run["attempt_list"]) == 1
    assert run["attempt_list"][0]["number"] == 1
    assert run["attempt_list"][0]["status"] == "FAILED"
    assert run["started_at"] is not None and run["completed_at"] is not None


def test_unknown_run_is_a_404_everywhere(api: TestClient) -> None:
    for method, path in (
        ("GET", "/api/v1/runs/run_nope"),
        ("GET", "/api/v1/runs/run_nope/logs"),
        ("POST", "/api/v1/runs/run_nope/cancel"),
        ("POST", "/api/v1/runs/run_nope/replay"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == {
            "code": "not_found",
            "message": "run run_nope not found",
        }


def test_logs_of_a_run(api: TestClient, backend: Backend) -> None:
    run_id = trigger(api)
    now = time.time()
    backend.engine.workers.append_logs(
        [
            LogEntry(run_id, 1, 0, now, "info", "starting", {"step": 1}),
            LogEntry(run_id, 1, 1, now + 0.1, "error", "oops"),
        ]
    )
    data = api.get(f"/api/v1/runs/{run_id}/logs").json()["data"]
    assert [(line["seq"], line["level"], line["message"]) for line in data] == [
        (0, "info", "starting"),
        (1, "error", "oops"),
    ]
    assert data[0]["attributes"] == {"step": 1}


def test_cancel_a_queued_run_then_again_is_a_409(api: TestClient) -> None:
    run_id = trigger(api)
    response = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELED"
    assert response.json()["completed_at"] is not None
    again = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "CANCELED" in again.json()["error"]["message"]
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"


def test_replay_makes_a_new_run_with_the_same_or_a_new_payload(api: TestClient) -> None:
    original = trigger(api, payload={"v": 1}, tags=["t"])
    api.post(f"/api/v1/runs/{original}/cancel")

    same = api.post(f"/api/v1/runs/{original}/replay")
    assert same.status_code == 201, same.text
    replay = api.get(f"/api/v1/runs/{same.json()['id']}").json()
    assert replay["id"] != original
    assert (replay["payload"], replay["tags"], replay["status"]) == ({"v": 1}, ["t"], "QUEUED")
    assert replay["replayed_from"] == original

    changed = api.post(f"/api/v1/runs/{original}/replay", json={"payload": {"v": 2}}).json()
    assert api.get(f"/api/v1/runs/{changed['id']}").json()["payload"] == {"v": 2}
    empty_body = api.post(f"/api/v1/runs/{original}/replay", json={}).json()
    assert api.get(f"/api/v1/runs/{empty_body['id']}").json()["payload"] == {"v": 1}
    null = api.post(f"/api/v1/runs/{original}/replay", json={"payload": None}).json()
    assert api.get(f"/api/v1/runs/{null['id']}").json()["payload"] is None


def test_replay_checks_a_new_payload_against_the_schema(api: TestClient, backend: Backend) -> None:
    original = trigger(api, "process-video", payload={"video_url": "https://x/v.mp4"})
    response = api.post(f"/api/v1/runs/{original}/replay", json={"payload": {"video_url": 5}})
    assert response.status_code == 422
    assert "video_url" in response.json()["error"]["message"]
    runs, _ = backend.engine.runs.list(backend.env.id)
    assert [r.id for r in runs] == [original]


# -- tasks and queues -------------------------------------------------------------------------


def test_tasks_are_listed_with_their_settings(api: TestClient) -> None:
    data = api.get("/api/v1/tasks").json()["data"]
    assert {t["id"] for t in data} == {"hello", "other", "encode", "process-video"}
    video = api.get("/api/v1/tasks/process-video").json()
    assert video["payload_schema"]["required"] == ["video_url"]
    assert video["queue"] == {
        "name": "task/process-video",
        "concurrency_limit": None,
        "rate_limit": None,
        "weights": None,
    }


def test_queues_list_pause_resume_and_concurrency(api: TestClient, backend: Backend) -> None:
    trigger(api, "encode")
    trigger(api, "encode")
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["data"]}
    assert queues["media/encode"] == {
        "name": "media/encode",
        "concurrency_limit": 2,
        "code_limit": 2,
        "override_limit": None,
        "paused": False,
        "running": 0,
        "queued": 2,
        "rate_limit": None,
        "rate_used": 0,
        "weights": None,
    }

    paused = api.post("/api/v1/queues/media/encode/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert (
        backend.engine.workers.lease(backend.env.id, "worker-1", capacity=10).attempts == []
    )  # paused means paused
    assert api.get("/api/v1/queues/media/encode").json()["paused"] is True

    resumed = api.post("/api/v1/queues/media/encode/resume").json()
    assert resumed["paused"] is False

    assert (
        api.post("/api/v1/queues/media/encode/concurrency", json={"concurrency_limit": 1}).json()[
            "concurrency_limit"
        ]
        == 1
    )
    leased = backend.engine.workers.lease(backend.env.id, "worker-1", capacity=10).attempts
    assert len(leased) == 1  # the new limit holds
    assert api.get("/api/v1/queues/media/encode").json()["running"] == 1
    cleared = api.post(
        "/api/v1/queues/media/encode/concurrency", json={"concurrency_limit": None}
    ).json()
    assert (cleared["concurrency_limit"], cleared["override_limit"]) == (
        2,
        None,
    )  # the code's limit again


def test_queue_errors(api: TestClient) -> None:
    for method, path in (
        ("GET", "/api/v1/queues/nope"),
        ("POST", "/api/v1/queues/nope/pause"),
        ("POST", "/api/v1/queues/nope/resume"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    bad = api.post("/api/v1/queues/task/hello/concurrency", json={"concurrency_limit": -1})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("concurrency_limit:")
    missing = api.post("/api/v1/queues/task/hello/concurrency", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["message"] == "concurrency_limit: required"
    assert api.get("/api/v1/queues/task/hello").json()["concurrency_limit"] is None
