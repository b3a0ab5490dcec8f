"""The Schedules page of a real `conveyor dev` in a real browser: a project with a scheduled task
(`@schedules.task(cron=..., timezone=...)`) shows its declarative schedule in the list with its
cron in words; its page shows the next fire times and says the code manages it; Deactivate stops
it (the engine agrees) and Activate starts it again."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import browser_fixture, page_fixture, screenshot  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer, free_port

TASKS = """
from conveyor import schedules


@schedules.task(id="nightly", cron="0 3 * * *", timezone="Europe/Paris")
async def nightly(payload, ctx):
    return {"fired_for": payload.timestamp.isoformat()}


@schedules.task(id="digest")
async def digest(payload, ctx):
    return None
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`conveyor dev` on a small project of two scheduled tasks, one with a cron."""
    root: Path = tmp_path_factory.mktemp("schedules") / "project"
    (root / "tasks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.conveyor]
            project = "proj_schedules"
            dirs = ["tasks"]
            """
        )
    )
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "nightly.py").write_text(TASKS)
    server = DevServer(root, free_port())
    server.start()
    yield server
    server.stop()


def test_the_declarative_schedule_is_listed_opened_deactivated_and_activated(
    dev: DevServer, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.api_url}/runs")
    page.keyboard.press("g")
    page.keyboard.press("s")
    page.wait_for_url("**/schedules")
    row = page.locator("tr[data-schedule]", has_text="nightly")
    expect(row).to_have_count(1)
    expect(row.locator("[data-type]")).to_have_text("declarative")
    expect(row.locator("[data-words]")).to_have_text("At 03:00 every day")
    expect(row).to_contain_text("0 3 * * *")
    expect(row).to_contain_text("Europe/Paris")
    expect(row.locator("[data-state]")).to_have_text("active")
    expect(row.locator("time.rel")).to_contain_text("in ")  # the next fire, counted down
    screenshot(page, "schedules")

    schedule_id = row.get_attribute("data-schedule")
    row.locator(f'a[href="/schedules/{schedule_id}"]').click()
    page.wait_for_url(f"**/schedules/{schedule_id}")
    expect(page.locator("[data-managed]")).to_contain_text("Managed by the code")
    expect(page.locator("#schedule-words")).to_have_text("At 03:00 every day")
    upcoming = page.locator("#upcoming [data-upcoming]")
    expect(upcoming).to_have_count(5)
    expect(upcoming.first.locator("[data-local]")).to_contain_text("03:00:00 CE")  # CET or CEST
    expect(upcoming.first.locator("[data-utc]")).to_contain_text(":00:00 UTC")
    screenshot(page, "schedule")

    page.get_by_role("button", name="Deactivate", exact=True).click()
    page.wait_for_url(f"**/schedules/{schedule_id}")
    expect(page.locator(".flash")).to_contain_text("deactivated")
    expect(page.locator("#schedule-state")).to_have_text("inactive")
    expect(page.locator("#upcoming")).to_contain_text("the schedule is inactive")
    with dev.client() as client:
        assert client.schedules.retrieve(schedule_id).active is False
    page.goto(f"{dev.api_url}/schedules?state=inactive")
    expect(page.locator(f'tr[data-schedule="{schedule_id}"] [data-state]')).to_have_text("inactive")

    page.goto(f"{dev.api_url}/schedules/{schedule_id}")
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("activated: next fire at")
    expect(page.locator("#schedule-state")).to_have_text("active")
    expect(page.locator("#upcoming [data-upcoming]")).to_have_count(5)
    with dev.client() as client:
        assert client.schedules.retrieve(schedule_id).active is True


def test_an_unknown_schedule_is_the_404_page(dev: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    response = page.goto(f"{dev.api_url}/schedules/sched_nope")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator(".error-page")).to_contain_text("schedule sched_nope not found")
