"""The MCP schedule tools with the `mcp` SDK's own client, against a real server (uvicorn over
SQLite and PostgreSQL, the engine on a clock the test moves): a schedule per customer made
idempotent by its deduplication key, listed with filters and pages, read with its next fire
times and its fires (a run made, a fire skipped while the last run has not ended), and bad input
answered as a tool error naming the argument."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.models import QueueSpec, RetryPolicy, ScheduledPayload, TaskDefinition, TaskSchedule
from conveyor.protocol import Heartbeat
from tests.integration.conftest import task_definitions
from tests.integration.mcp_tools import call, refused, session

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("isolated_settings")]


def scheduled(task_id: str, cron: str | None = None) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=f"task/{task_id}"),
        retry=RetryPolicy(max_attempts=1),
        payload_schema=ScheduledPayload.model_json_schema(),
        schedule=TaskSchedule(cron=cron),
    )


@pytest.fixture
def platform(platform: Backend) -> Backend:
    """The dev environment with two scheduled tasks, `digest` (imperative schedules only) and
    `report` (declared at 06:00), reached by the MCP server through its key."""
    tasks = [*task_definitions(), scheduled("digest"), scheduled("report", "0 6 * * *")]
    platform.engine.workers.set_tasks(platform.env.id, tasks)
    return platform


def fire_due(backend: Backend, schedule: dict[str, Any]) -> None:
    """Move the clock just past the schedule's next fire time and tick, the dev worker alive."""
    due = datetime.fromisoformat(schedule["next_fire_at"]).timestamp()
    backend.clock.advance(due - backend.clock() + 0.5)
    backend.engine.workers.heartbeat("worker-1", Heartbeat())
    backend.engine.tick()


async def test_a_schedule_per_customer_is_made_once_and_found_by_its_external_id(
    platform: Backend,
) -> None:
    async with session() as client:
        made, text = await call(
            client,
            "create_schedule",
            task="digest",
            cron="0 9 * * 1",
            timezone="Europe/Paris",
            external_id="user-42",
            deduplication_key="user-42-digest",
        )
        schedule = made["schedule"]
        assert made["environment"] == "dev" and made["updated_existing"] is False
        assert schedule["type"] == "IMPERATIVE" and schedule["external_id"] == "user-42"
        assert schedule["timezone"] == "Europe/Paris" and len(schedule["upcoming"]) == 5
        assert text.startswith(f"Created {schedule['id']} in dev:")
        assert "09:00:00+0" in text and "external_id=user-42" in text  # local time, its offset
        assert "not caught up" in text  # how dev fires

        again, text = await call(
            client,
            "create_schedule",
            task="digest",
            cron="0 10 * * 1",
            timezone="Europe/Paris",
            external_id="user-42",
            deduplication_key="user-42-digest",
        )
        assert again["updated_existing"] is True and again["schedule"]["id"] == schedule["id"]
        assert again["schedule"]["cron"] == "0 10 * * 1" and text.startswith("Updated")

        mine, text = await call(client, "list_schedules", external_id="user-42")
        assert [s["id"] for s in mine["schedules"]] == [schedule["id"]]
        assert text.startswith("1 schedules in dev:") and "'0 10 * * 1' Europe/Paris" in text
        declared, _ = await call(client, "list_schedules", type="DECLARATIVE")
        assert [(s["task"], s["cron"]) for s in declared["schedules"]] == [("report", "0 6 * * *")]
        none, text = await call(client, "list_schedules", task="digest", active=False)
        assert none["schedules"] == [] and "No schedules match" in text

        worker, text = await call(client, "get_current_worker")
        assert "report" in text and "scheduled cron='0 6 * * *' UTC" in text
        assert next(t for t in worker["tasks"] if t["id"] == "digest")["schedule"]["cron"] is None


async def test_schedules_page_with_a_cursor(platform: Backend) -> None:
    async with session() as client:
        for n in range(3):
            await call(client, "create_schedule", task="digest", cron="@daily", external_id=f"c{n}")
        seen: list[str] = []
        cursor = None
        while True:
            arguments = {"task": "digest", "limit": 2} | ({"cursor": cursor} if cursor else {})
            page, text = await call(client, "list_schedules", **arguments)
            seen += [s["external_id"] for s in page["schedules"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert f"cursor={cursor}" in text
    assert seen == ["c2", "c1", "c0"]


async def test_get_schedule_shows_the_runs_it_made_and_the_fires_it_skipped(
    platform: Backend,
) -> None:
    async with session() as client:
        made, _ = await call(
            client, "create_schedule", task="digest", cron="* * * * *", overlap="skip"
        )
        schedule = made["schedule"]
        fire_due(platform, schedule)  # a run, QUEUED: no worker takes it
        after, _ = await call(client, "get_schedule", schedule_id=schedule["id"])
        fire_due(platform, after["schedule"])  # the run has not ended: skipped

        details, text = await call(client, "get_schedule", schedule_id=schedule["id"])
    skipped, triggered = details["schedule"]["recent_fires"]
    run_id = triggered["run_id"]
    assert triggered["outcome"] == "triggered" and triggered["run_status"] == "QUEUED"
    assert skipped["outcome"] == "skipped" and run_id in skipped["message"]
    assert details["schedule"]["last_run_id"] == run_id
    assert len(details["schedule"]["upcoming"]) == 5
    assert "recent fires (2, newest first):" in text
    assert f"triggered {run_id} (QUEUED)" in text
    assert f"skipped: the previous run {run_id} is still QUEUED" in text
    run = platform.engine.runs.get(platform.env.id, run_id)
    assert ScheduledPayload.model_validate(run.payload).schedule_id == schedule["id"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"cron": "61 * * * *"}, "cron: bad minute field '61'"),
        ({"cron": "0 0 6 * * *"}, "seconds are not supported"),
        ({"cron": "@fortnightly"}, "cron: unknown shorthand"),
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        ({"task": "nope"}, "task: 'nope' is not defined"),
        ({"task": "hello"}, "task: 'hello' is not a scheduled task"),
        ({"catch_up": "all"}, "catch_up"),
        ({"overlap": "queue"}, "overlap"),
    ],
)
async def test_bad_input_is_a_tool_error_naming_the_argument(
    platform: Backend, arguments: dict[str, str], message: str
) -> None:
    async with session() as client:
        text = await refused(
            client, "create_schedule", **({"task": "digest", "cron": "0 9 * * *"} | arguments)
        )
        assert message in text
        if arguments.get("task") == "nope":
            assert "get_current_worker" in text
    assert platform.engine.schedules.list(platform.env.id, type="IMPERATIVE") == []


async def test_an_unknown_schedule_says_where_to_find_them(platform: Backend) -> None:
    async with session() as client:
        text = await refused(client, "get_schedule", schedule_id="sched_nope")
    assert "sched_nope" in text and "list_schedules" in text


async def test_readonly_leaves_out_create_schedule(platform: Backend) -> None:
    async with session(readonly=True) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"list_schedules", "get_schedule"} <= names and "create_schedule" not in names
