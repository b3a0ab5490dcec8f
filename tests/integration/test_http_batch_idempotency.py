"""A batch's idempotency key over HTTP and through the client, on SQLite and PostgreSQL:
`POST /api/v1/tasks/{task_id}/batch` and `POST /api/v1/batches` take `idempotency_key` and
`idempotency_key_ttl` in their body; the same key answers 200 with the same batch, marked
`is_cached`; bad keys are a 4xx naming the field, never a 500; the key can be released."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conveyor import Client
from conveyor.errors import Conflict
from tests.integration.conftest import Backend
from tests.integration.test_http_api import error_of, run_count

BATCH = "/api/v1/tasks/hello/batch"
ITEMS = [{"payload": {"n": 1}}, {"payload": {"n": 2}}]


def test_the_same_key_answers_200_with_the_same_batch(api: TestClient, backend: Backend) -> None:
    first = api.post(BATCH, json={"items": ITEMS, "idempotency_key": "import-7"})
    assert first.status_code == 201, first.text
    assert first.json()["is_cached"] is False
    again = api.post(
        BATCH, json={"items": ITEMS, "idempotency_key": "import-7", "idempotency_key_ttl": "1h"}
    )
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["is_cached"] is True and body["batch_id"] == first.json()["batch_id"]
    assert [r["id"] for r in body["runs"]] == [r["id"] for r in first.json()["runs"]]
    assert all(r["is_cached"] for r in body["runs"])
    assert run_count(backend) == 2
    run = api.get(f"/api/v1/runs/{body['runs'][0]['id']}").json()
    assert run["batch_id"] == body["batch_id"]


def test_a_batch_of_several_tasks_takes_a_key(api: TestClient, backend: Backend) -> None:
    body = {
        "items": [{"task": "hello", "payload": 1}, {"task": "other", "options": {"tags": ["x"]}}],
        "idempotency_key": "mixed",
    }
    first = api.post("/api/v1/batches", json=body)
    assert first.status_code == 201, first.text
    assert [r["task_id"] for r in first.json()["runs"]] == ["hello", "other"]
    again = api.post("/api/v1/batches", json=body)
    assert again.status_code == 200 and again.json()["batch_id"] == first.json()["batch_id"]
    assert run_count(backend) == 2
    # without a key, every call is a batch of its own
    plain = api.post("/api/v1/batches", json={"items": body["items"]})
    assert plain.status_code == 201 and plain.json()["batch_id"] != first.json()["batch_id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        ({"items": ITEMS, "idempotency_key": ""}, 422, "invalid_request", "idempotency_key"),
        ({"items": ITEMS, "idempotency_key": 42}, 422, "invalid_request", "idempotency_key"),
        (
            {"items": ITEMS, "idempotency_key": "k" * 2049},
            422,
            "invalid_request",
            "idempotency_key",
        ),
        (
            {"items": ITEMS, "idempotency_key": "k", "idempotency_key_ttl": "soon"},
            422,
            "invalid_request",
            "idempotency_key_ttl",
        ),
        (
            {"items": ITEMS, "idempotency_key": "k", "idempotency_key_ttl": -5},
            422,
            "invalid_request",
            "idempotency_key_ttl",
        ),
        (
            {"items": ITEMS, "idempotency_key_ttl": "later"},
            422,
            "invalid_request",
            "idempotency_key_ttl",
        ),
        ({"items": ITEMS, "idempotency_key": "a\ud800"}, 422, "invalid_request", "idempotency_key"),
        ({"items": ITEMS, "idempotency": "k"}, 422, "invalid_request", "idempotency"),
    ],
)
def test_bad_keys_are_a_4xx_naming_the_field(
    api: TestClient, backend: Backend, body: dict[str, Any], status: int, code: str, names: str
) -> None:
    # sent as ASCII JSON, so a lone surrogate arrives as the escape a client may well send
    sent = api.post(BATCH, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert names in error_of(sent, status, code)
    assert run_count(backend) == 0


def test_bad_items_of_a_batch_of_several_tasks_are_a_4xx(api: TestClient, backend: Backend) -> None:
    missing_task = {"items": [{"payload": 1}], "idempotency_key": "k"}
    assert "task" in error_of(
        api.post("/api/v1/batches", json=missing_task), 422, "invalid_request"
    )
    unknown = {"items": [{"task": "nope"}], "idempotency_key": "k"}
    assert "nope" in error_of(api.post("/api/v1/batches", json=unknown), 404, "not_found")
    assert "items" in error_of(
        api.post("/api/v1/batches", json={"items": [], "idempotency_key": "k"}),
        422,
        "invalid_request",
    )
    assert run_count(backend) == 0
    # the failed calls claimed nothing: the key makes its batch now
    made = api.post("/api/v1/batches", json={"items": [{"task": "hello"}], "idempotency_key": "k"})
    assert made.status_code == 201, made.text


def test_the_key_of_other_items_is_a_409_naming_the_batch(
    api: TestClient, backend: Backend
) -> None:
    first = api.post(BATCH, json={"items": ITEMS, "idempotency_key": "k"}).json()
    message = error_of(
        api.post(BATCH, json={"items": ITEMS * 2, "idempotency_key": "k"}), 409, "conflict"
    )
    assert first["batch_id"] in message and "4 items" in message
    other_task = api.post(
        "/api/v1/tasks/other/batch", json={"items": ITEMS, "idempotency_key": "k"}
    )
    assert "'other'" in error_of(other_task, 409, "conflict")
    assert run_count(backend) == 2


def test_reset_releases_a_batch_key(api: TestClient, backend: Backend) -> None:
    first = api.post(BATCH, json={"items": ITEMS, "idempotency_key": "k"}).json()
    reset = api.post("/api/v1/batches/idempotency-keys/reset", json={"key": "k"})
    assert reset.status_code == 200 and reset.json() == {"released": True}
    again = api.post("/api/v1/batches/idempotency-keys/reset", json={"key": "k"})
    assert again.json() == {"released": False}
    fresh = api.post(BATCH, json={"items": ITEMS, "idempotency_key": "k"})
    assert fresh.status_code == 201 and fresh.json()["batch_id"] != first["batch_id"]
    error_of(api.post("/api/v1/batches/idempotency-keys/reset", json={}), 422, "invalid_request")
    error_of(
        api.post("/api/v1/batches/idempotency-keys/reset", json={"key": ""}),
        422,
        "invalid_request",
    )


def test_the_client_sends_the_key_and_reads_the_cached_batch(
    live_server: str, backend: Backend
) -> None:
    with Client(live_server, backend.key) as client:
        first = client.tasks.batch_trigger(
            "hello", ITEMS, idempotency_key="c", idempotency_key_ttl=60
        )
        again = client.batch_trigger("hello", ITEMS, idempotency_key="c")
        assert again.is_cached and not first.is_cached and again.batch_id == first.batch_id
        assert [r.id for r in again.runs] == [r.id for r in first.runs]
        assert all(r.is_cached for r in again.runs)
        mixed = [{"task": "hello", "payload": 1}, {"task": "other"}]
        by_task = client.tasks.batch_trigger_by_task(mixed, idempotency_key="m")
        assert [r.task_id for r in by_task.runs] == ["hello", "other"]
        assert client.tasks.batch_trigger_by_task(mixed, idempotency_key="m").is_cached
        assert client.idempotency_keys.reset_batch("m") is True
        assert not client.tasks.batch_trigger_by_task(mixed, idempotency_key="m").is_cached
        with pytest.raises(Conflict, match="1 item: a key names one batch"):
            client.tasks.batch_trigger("hello", ITEMS[:1], idempotency_key="c")


def test_task_objects_from_a_backend_send_the_batch_key(
    live_server: str, backend: Backend, isolated_settings: None
) -> None:
    import asyncio

    from conveyor import batch, idempotency_keys, task
    from conveyor.client import default

    @task(id="hello")
    async def hello(payload: Any) -> None: ...

    @task(id="other")
    async def other(payload: Any) -> None: ...

    async def calls() -> list[Any]:
        first = await hello.batch_trigger(ITEMS, idempotency_key="t", idempotency_key_ttl="1h")
        again = await hello.batch_trigger(ITEMS, idempotency_key="t")
        mixed = [{"task": hello, "payload": 1}, {"task": other, "payload": 2}]
        by_task = await batch.trigger_by_task(mixed, idempotency_key="bt")
        by_task_again = await batch.trigger_by_task(mixed, idempotency_key="bt")
        released = await idempotency_keys.reset_batch("bt")
        return [first, again, by_task, by_task_again, released]

    default.configure(api_url=live_server, secret_key=backend.key)
    try:
        first, again, by_task, by_task_again, released = asyncio.run(calls())
    finally:
        default.configure()
    assert again.is_cached and again.batch_id == first.batch_id
    assert [r.id for r in again.runs] == [r.id for r in first.runs]
    # from a backend a batch of several tasks is one batch too, with its id
    assert by_task.batch_id.startswith("batch_") and not by_task.is_cached
    assert [r.task_id for r in by_task.runs] == ["hello", "other"]
    assert by_task_again.is_cached and by_task_again.batch_id == by_task.batch_id
    assert released is True
    assert run_count(backend) == 4
