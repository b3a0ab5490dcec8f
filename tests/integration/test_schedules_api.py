"""Schedules through every front a backend uses: the HTTP routes (errors as 4xx naming the
field, never a 5xx), `Client().schedules` and `AsyncClient().schedules` against a real server,
and `conveyor schedules ...` (one line per error)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conveyor import AsyncClient, Client, InvalidRequest, NotFound
from conveyor.cli.main import main
from conveyor.errors import Conflict
from conveyor.models import QueueSpec, RetryPolicy, ScheduledPayload, TaskDefinition, TaskSchedule
from tests.integration.conftest import KEY, Backend, task_definitions


def scheduled(task_id: str, cron: str | None = None) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=f"task/{task_id}"),
        retry=RetryPolicy(max_attempts=1),
        payload_schema=ScheduledPayload.model_json_schema(),
        schedule=TaskSchedule(cron=cron),
    )


@pytest.fixture(autouse=True)
def scheduled_tasks(backend: Backend) -> None:
    backend.engine.workers.set_tasks(
        backend.env.id,
        [*task_definitions(), scheduled("digest"), scheduled("nightly", "0 3 * * *")],
    )


def error_of(response: Any) -> str:
    body = response.json()
    return str(body["error"]["message"])


def test_the_routes_create_read_change_and_remove_a_schedule(api: TestClient) -> None:
    body = {
        "task": "digest",
        "cron": "0 9 * * 1",
        "timezone": "America/New_York",
        "external_id": "user-42",
        "deduplication_key": "user-42-digest",
    }
    created = api.post("/api/v1/schedules", json=body)
    assert created.status_code == 200, created.text
    s = created.json()
    assert s["type"] == "IMPERATIVE" and s["cron_description"] == "At 09:00 on Monday"
    assert len(s["upcoming"]) == 5 and s["next_fire_at"] == s["upcoming"][0]
    assert s["next_fire_at"].endswith("Z") or s["next_fire_at"].endswith("+00:00")

    again = api.post("/api/v1/schedules", json={**body, "cron": "30 9 * * 1"}).json()
    assert again["id"] == s["id"] and again["cron"] == "30 9 * * 1"  # idempotent: an update

    got = api.get(f"/api/v1/schedules/{s['id']}").json()
    assert got["recent_fires"] == [] and got["external_id"] == "user-42"
    put = api.put(f"/api/v1/schedules/{s['id']}", json={"cron": "@daily"})
    assert put.status_code == 200 and put.json()["cron"] == "0 0 * * *"
    assert api.post(f"/api/v1/schedules/{s['id']}/deactivate").json()["active"] is False
    assert api.post(f"/api/v1/schedules/{s['id']}/activate").json()["active"] is True

    listed = api.get("/api/v1/schedules", params={"external_id": "user-42"}).json()
    assert [x["id"] for x in listed["data"]] == [s["id"]]
    declared = api.get("/api/v1/schedules", params={"type": "DECLARATIVE"}).json()["data"]
    assert [x["task"] for x in declared] == ["nightly"]

    gone = api.delete(f"/api/v1/schedules/{s['id']}")
    assert gone.status_code == 200 and gone.json()["id"] == s["id"]
    assert api.get(f"/api/v1/schedules/{s['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"task": "digest", "cron": "0 25 * * *"}, 400, "cron: bad hour field '25'"),
        ({"task": "digest", "cron": "0 0 9 * * *"}, 400, "cron: "),
        ({"task": "digest", "cron": "@weekday"}, 400, "cron: unknown shorthand"),
        ({"task": "digest", "cron": "0 9 * * *", "timezone": "Europe/Pariss"}, 400, "timezone: "),
        ({"task": "ghost", "cron": "0 9 * * *"}, 404, "task: 'ghost' is not defined"),
        ({"task": "hello", "cron": "0 9 * * *"}, 400, "task: 'hello' is not a scheduled task"),
        ({"task": "digest", "cron": "0 9 * * *", "overlap": "queue"}, 422, "overlap"),
        ({"task": "digest"}, 422, "cron"),
        ({"task": "digest", "cron": "0 9 * * *", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    api: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    response = api.post("/api/v1/schedules", json=body)
    assert response.status_code == status, response.text
    assert field in error_of(response)
    assert api.get("/api/v1/schedules", params={"type": "IMPERATIVE"}).json()["data"] == []


def test_a_declarative_schedule_is_changed_by_its_code_only(api: TestClient) -> None:
    (s,) = api.get("/api/v1/schedules", params={"task": "nightly"}).json()["data"]
    for response in (
        api.put(f"/api/v1/schedules/{s['id']}", json={"cron": "0 4 * * *"}),
        api.delete(f"/api/v1/schedules/{s['id']}"),
    ):
        assert response.status_code == 409 and "declared in the code" in error_of(response)
    assert api.post(f"/api/v1/schedules/{s['id']}/deactivate").json()["active"] is False


def test_a_key_of_another_environment_sees_none_of_them(backend: Backend, api: TestClient) -> None:
    made = api.post("/api/v1/schedules", json={"task": "digest", "cron": "@hourly"}).json()
    other = backend.other_environment()
    with TestClient(api.app, headers={"Authorization": f"Bearer {other}"}) as stranger:  # type: ignore[arg-type]
        assert stranger.get("/api/v1/schedules").json()["data"] == []
        assert stranger.get(f"/api/v1/schedules/{made['id']}").status_code == 404
        assert stranger.post(f"/api/v1/schedules/{made['id']}/deactivate").status_code == 404


def test_the_sync_and_async_clients_speak_the_same_calls(live_server: str) -> None:
    with Client(live_server, KEY) as client:
        s = client.schedules.create(task="digest", cron="*/15 * * * *", external_id="c1")
        assert client.schedules.retrieve(s.id).cron_description.startswith("Every 15")
        assert client.schedules.update(s.id, timezone="Asia/Tokyo").timezone == "Asia/Tokyo"
        page = client.schedules.list(task="digest")
        assert [x.id for x in page] == [s.id] and not page.has_more
        with pytest.raises(InvalidRequest, match="cron: bad minute"):
            client.schedules.create(task="digest", cron="99 * * * *")
        with pytest.raises(InvalidRequest, match="update needs at least one"):
            client.schedules.update(s.id)
        with pytest.raises(Conflict):
            nightly = client.schedules.list(type="DECLARATIVE").data[0]
            client.schedules.delete(nightly.id)

    async def async_side() -> None:
        async with AsyncClient(live_server, KEY) as client:
            off = await client.schedules.deactivate(s.id)
            assert not off.active and off.upcoming == []
            await client.schedules.delete(s.id)
            with pytest.raises(NotFound):
                await client.schedules.retrieve(s.id)

    asyncio.run(async_side())


def test_the_cli_lists_shows_creates_and_refuses_in_one_line(live_server: str) -> None:
    runner = CliRunner()
    connect = ["--api-url", live_server, "--secret-key", KEY]

    def cli(*args: str) -> Any:
        return runner.invoke(main, [*args, *connect], catch_exceptions=False)

    made = cli(
        "schedules", "create", "--task", "digest", "--cron", "0 9 * * 1",
        "--tz", "Europe/Paris", "--external-id", "acme", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    schedule = json.loads(made.output)
    assert schedule["timezone"] == "Europe/Paris"

    listed = cli("schedules", "list")
    assert schedule["id"] in listed.output and "nightly" in listed.output
    shown = cli("schedules", "show", schedule["id"])
    assert "At 09:00 on Monday" in shown.output and "Next fire times" in shown.output
    assert "CET" in shown.output or "CEST" in shown.output  # times in the schedule's own zone
    assert "Deactivated" in cli("schedules", "deactivate", schedule["id"]).output
    listed = json.loads(cli("schedules", "list", "--inactive", "--json").output)
    assert [s["id"] for s in listed["data"]] == [schedule["id"]]

    for args, message in [
        (["create", "--task", "digest", "--cron", "0 9 * *"], "cron: '0 9 * *' has 4 fields"),
        (["create", "--task", "digest", "--cron", "@daily", "--tz", "Nowhere"], "timezone:"),
        (["create", "--task", "hello", "--cron", "@daily"], "is not a scheduled task"),
        (["create", "--cron", "@daily"], "create needs --task"),
        (["update", schedule["id"]], "update needs at least one"),
        (["show", "sched_nope"], "schedule sched_nope not found"),
    ]:
        result = cli("schedules", *args)
        assert result.exit_code != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (
            result.stderr
        )
    assert "Deleted" in cli("schedules", "delete", schedule["id"]).output
