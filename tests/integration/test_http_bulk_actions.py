"""Bulk actions over HTTP and through the client, on SQLite and PostgreSQL: made with 202, read
for progress, listed, stopped; bad filters are a 4xx naming the field, never a 500."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.client import AsyncClient, Client
from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.models import RunStatus

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")


@pytest.fixture
def ticking(backend: Backend) -> Iterator[None]:
    """The platform's tick loop, as a server runs it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.02):
            backend.engine.tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def trigger(api: Any, task: str, n: int, **options: Any) -> list[str]:
    items = [{"payload": {"i": i}, "options": options} for i in range(n)]
    answer = api.post(f"/api/v1/tasks/{task}/batch", json={"items": items})
    assert answer.status_code == 201, answer.text
    return [r["id"] for r in answer.json()["runs"]]


def test_bulk_cancel_over_http_runs_in_the_tick_and_reports_progress(
    api: Any, backend: Backend
) -> None:
    hello = trigger(api, "hello", 4)
    other = trigger(api, "other", 2)
    counted = api.post("/api/v1/runs/bulk/count", json={"kind": "cancel", "task": "hello"})
    assert counted.json() == {"kind": "cancel", "matched": 4}
    made = api.post("/api/v1/runs/bulk/cancel", json={"status": "queued", "task": "hello"})
    assert made.status_code == 202, made.text
    action = made.json()
    assert action["id"].startswith("bulk_") and action["status"] == "RUNNING"
    assert (action["kind"], action["total"], action["filters"]["status"]) == (
        "cancel",
        4,
        ["QUEUED"],
    )
    backend.clock.advance(0.01)
    backend.engine.tick()
    done = api.get(f"/api/v1/bulk-actions/{action['id']}").json()
    assert (done["status"], done["done"], done["completed_at"] is not None) == (
        "COMPLETED",
        4,
        True,
    )
    assert {api.get(f"/api/v1/runs/{r}").json()["status"] for r in hello} == {"CANCELED"}
    assert {api.get(f"/api/v1/runs/{r}").json()["status"] for r in other} == {"QUEUED"}
    listed = api.get("/api/v1/bulk-actions").json()["data"]
    assert [a["id"] for a in listed] == [action["id"]]
    stopped = api.post(f"/api/v1/bulk-actions/{action['id']}/cancel")
    assert stopped.status_code == 409 and "already ended COMPLETED" in stopped.text


def test_the_same_idempotency_key_answers_200_with_the_same_action(api: Any) -> None:
    trigger(api, "hello", 1)
    body = {"task": "hello", "idempotency_key": "weekly-cleanup"}
    first = api.post("/api/v1/runs/bulk/replay", json=body)
    again = api.post("/api/v1/runs/bulk/replay", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["is_cached"] is True
    other = api.post("/api/v1/runs/bulk/cancel", json=body)
    assert other.status_code == 409 and "weekly-cleanup" in other.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({}, 400, "at least one filter"),
        ({"all": "yes"}, 422, "all"),
        ({"status": "DONE"}, 422, "status"),
        ({"status": ["FAILED"]}, 400, "cannot be canceled"),
        ({"task": "hello", "since": "soon"}, 422, "since"),
        ({"task": "hello", "created_from": "yesterday"}, 422, "created_from"),
        ({"task": "hello", "colour": "red"}, 422, "colour"),
        ({"task": ""}, 422, "task"),
        ({"task": "hello", "idempotency_key": 7}, 422, "idempotency_key"),
        (
            {"created_from": "2027-01-02T00:00:00Z", "created_to": "2027-01-01T00:00:00Z"},
            400,
            "created_to",
        ),
    ],
)
def test_bad_filters_are_a_4xx_naming_the_field(
    api: Any, body: dict[str, Any], status: int, names: str
) -> None:
    answer = api.post("/api/v1/runs/bulk/cancel", json=body)
    assert answer.status_code == status, answer.text
    assert names in answer.json()["error"]["message"]


def test_unknown_actions_are_404_and_other_environments_see_nothing(
    api: Any, backend: Backend
) -> None:
    trigger(api, "hello", 1)
    action = api.post("/api/v1/runs/bulk/cancel", json={"task": "hello"}).json()
    assert api.get("/api/v1/bulk-actions/bulk_nope").status_code == 404
    other = {"Authorization": f"Bearer {backend.other_environment()}"}
    assert api.get(f"/api/v1/bulk-actions/{action['id']}", headers=other).status_code == 404
    assert api.get("/api/v1/bulk-actions", headers=other).json()["data"] == []
    assert api.post(f"/api/v1/bulk-actions/{action['id']}/cancel", headers=other).status_code == (
        404
    )


@pytest.mark.usefixtures("ticking")
def test_the_client_starts_follows_and_stops_bulk_actions(
    live_server: str, backend: Backend
) -> None:
    with Client(live_server, backend.key) as client:
        runs = [client.trigger("hello", {"i": i}).id for i in range(3)]
        assert client.runs.bulk_count("cancel", task="hello", since="1h") == 3
        action = client.runs.bulk_cancel(status=[RunStatus.QUEUED], task="hello")
        done = client.runs.wait_bulk_action(action.id, interval=0.05, timeout=10)
        assert (done.status, done.done, done.processed, done.total) == ("COMPLETED", 3, 3, 3)
        assert {client.runs.retrieve(r).status for r in runs} == {RunStatus.CANCELED}
        replay = client.runs.bulk_replay(status="CANCELED", idempotency_key="again")
        assert client.runs.bulk_replay(status="CANCELED", idempotency_key="again").is_cached
        assert client.runs.wait_bulk_action(replay.id, interval=0.05, timeout=10).done == 3
        assert [a.id for a in client.runs.bulk_actions()] == [replay.id, action.id]
        with pytest.raises(InvalidRequest, match="at least one filter"):
            client.runs.bulk_cancel()
        with pytest.raises(NotFound):
            client.runs.bulk_action("bulk_nope")
        with pytest.raises(Conflict):
            client.runs.stop_bulk_action(action.id)


@pytest.mark.usefixtures("ticking")
def test_the_async_client_has_the_same_bulk_actions(live_server: str, backend: Backend) -> None:
    async def main() -> None:
        async with AsyncClient(live_server, backend.key) as client:
            await client.trigger("other", {})
            action = await client.runs.bulk_cancel(task="other")
            done = await client.runs.wait_bulk_action(action.id, interval=0.05, timeout=10)
            assert (done.status, done.done) == ("COMPLETED", 1)
            assert (await client.runs.bulk_action(action.id)).id == action.id

    asyncio.run(main())
