"""The dashboard of a real `conveyor dev` in a real browser, with real runs: the list shows a
new run without a reload and its filters narrow it; a run page shows logs and the child runs
of a fan-out in its trace; cancel and replay work; a paused queue starts nothing until it is
resumed; a rate-limited queue shows its window; a token completed from the page resumes its
run; the keyboard gets around."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Client
from tests.e2e.browser import browser_fixture, page_fixture, screenshot  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer, wait_for


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    """The dashboard is the one of `conveyor dev`: its runs are made through its own key."""
    with dev.client() as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_of(client: Client, run_id: str) -> str:
    return str(client.runs.retrieve(run_id).status)


def test_the_list_shows_a_new_run_without_a_reload(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.api_url}/runs")
    page.evaluate("window.stillTheSamePage = true")
    run = client.trigger("echo", {"hello": "live"}, tags=[unique("live")])
    row = page.locator(f'tr[data-id="{run.id}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator(".badge")).to_have_text("COMPLETED", timeout=15_000)
    assert page.evaluate("window.stillTheSamePage") is True


def test_filters_narrow_the_list(dev: DevServer, client: Client, page: Any) -> None:
    from playwright.sync_api import expect

    tag = unique("filter")
    echo = client.trigger("echo", {"n": 1}, tags=[tag])
    child = client.trigger("echo-child", {"n": 2}, tags=[tag])
    other = client.trigger("echo", {"n": 3})
    client.runs.poll(child.id, timeout=30)
    page.goto(f"{dev.api_url}/runs")
    expect(page.locator(f'tr[data-id="{other.id}"]')).to_be_visible()
    page.fill('input[name="tag"]', tag)
    page.press('input[name="tag"]', "Enter")
    page.wait_for_url(f"**tag={tag}**")
    expect(page.locator("tbody tr[data-id]")).to_have_count(2)
    expect(page.locator(f'tr[data-id="{other.id}"]')).to_have_count(0)
    page.select_option('select[name="task"]', "echo")  # submits by itself
    page.wait_for_url("**task=echo**")
    expect(page.locator("tbody tr[data-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{echo.id}"]')).to_be_visible()
    page.select_option('select[name="status"]', "failed")
    page.wait_for_url("**status=failed**")
    expect(page.locator("tbody tr[data-id]")).to_have_count(0)
    expect(page.locator("tr.empty")).to_contain_text("No run matches")
    page.fill("#search", child.id)
    page.press("#search", "Enter")
    page.wait_for_url(f"**/runs/{child.id}")


def test_a_run_page_shows_logs_and_the_children_of_a_fan_out(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    chatty = client.trigger("chatty", None)
    assert client.runs.poll(chatty.id, timeout=30).status == "COMPLETED"
    page.goto(f"{dev.api_url}/runs/{chatty.id}")
    logs = page.locator("#logs")
    for text in ("from print", "from logging", "from logger"):
        expect(logs).to_contain_text(text)
    expect(logs.locator(".lvl-warn")).to_have_count(1)
    expect(logs.locator(".attr", has_text="k=")).to_have_text("k=1")

    fan = client.trigger("fan-out", {"count": 3}, tags=["fan-out"])
    assert client.runs.poll(fan.id, timeout=60).status == "COMPLETED"
    page.goto(f"{dev.api_url}/runs/{fan.id}")
    expect(page.locator("#run-status")).to_have_text("COMPLETED")
    expect(page.locator("[data-child-run]")).to_have_count(4)  # trigger_and_wait + a batch of 3
    expect(page.locator(".wf-row.inherited.k-attempt")).to_have_count(4)  # each child's own attempt
    expect(page.locator("#run-output")).to_contain_text('"one": 42')
    screenshot(page, "run")
    page.locator('a[data-rel="child"]').first.click()
    page.wait_for_url("**/runs/run_*")
    expect(page.locator('a[data-rel="parent"]')).to_have_text(fan.id)


def test_cancel_and_replay_with_an_edited_payload(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    run = client.trigger("blocker", {"original": True})
    wait_for(
        lambda: status_of(client, run.id) == "EXECUTING", timeout=30, what="the blocker to start"
    )
    page.goto(f"{dev.api_url}/runs/{run.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Cancel run")
    expect(page.locator("#run-status")).to_have_text("CANCELED")
    assert status_of(client, run.id) == "CANCELED"

    page.click("text=Replay…")
    page.fill("#replay-payload", '{"edited": true}')
    page.click("text=Replay run")
    page.wait_for_url(lambda url: "/runs/run_" in url and run.id not in url)
    replay_id = page.url.rsplit("/", 1)[1]
    replayed = client.runs.retrieve(replay_id)
    assert replayed.payload == {"edited": True} and replayed.replayed_from == run.id
    expect(page.locator(f'a[href="/runs/{run.id}"]')).to_be_visible()
    client.runs.cancel(replay_id)


def test_a_paused_queue_starts_nothing_until_it_is_resumed(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.api_url}/queues")
    row = page.locator('tr[data-queue="echo-child"]')
    row.locator("text=Pause").click()
    expect(page.locator(".flash")).to_contain_text("paused")
    try:
        run = client.trigger("echo-child", {"paused": True})
        expect(page.locator('tr[data-queue="echo-child"] [data-queued]')).to_have_text(
            "1", timeout=10_000
        )  # live
        page.wait_for_timeout(2000)
        assert status_of(client, run.id) == "QUEUED"
        screenshot(page, "queues")
    finally:
        page.locator('tr[data-queue="echo-child"]').locator("text=Resume").click()
    expect(page.locator(".flash")).to_contain_text("resumed")
    assert client.runs.poll(run.id, timeout=30).status == "COMPLETED"


def test_a_token_completed_from_the_page_resumes_its_run(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    run = client.trigger("approval", {"key": unique("approve")})
    wait_for(
        lambda: status_of(client, run.id) == "WAITING",
        timeout=30,
        what="the run to wait on its token",
    )
    token_id = next(
        line.attributes["id"] for line in client.runs.logs(run.id) if line.message == "token"
    )
    page.goto(f"{dev.api_url}/tokens")
    row = page.locator(f'tr[data-token="{token_id}"]')
    expect(row).to_be_visible()
    row.locator("textarea").fill(json.dumps({"approved": True}))
    screenshot(page, "tokens")
    row.locator("text=Complete").click()
    expect(page.locator(".flash")).to_contain_text("completed")
    done = client.runs.poll(run.id, timeout=30)
    assert done.status == "COMPLETED"
    assert done.output["output"] == {"approved": True}


def test_a_test_run_from_the_task_page(dev: DevServer, client: Client, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.api_url}/tasks")
    screenshot(page, "tasks")
    page.click('a[href="/tasks/video"]')
    page.wait_for_url("**/tasks/video")
    expect(page.locator("#test-payload")).to_contain_text('"format": "mp4"')  # shaped by the schema
    page.fill("#test-payload", '{"video_url": "https://example.com/a.mp4"}')
    screenshot(page, "task")
    page.keyboard.press("Control+Enter")
    page.wait_for_url("**/runs/run_*")
    expect(page.locator("#run-status")).to_have_text("COMPLETED", timeout=15_000)
    expect(page.locator("#run-output")).to_contain_text("https://example.com/a.mp4")
    page.goto(f"{dev.api_url}/tasks/video")
    page.fill("#test-payload", '{"format": "avi"}')
    page.click("text=Trigger test run")
    expect(page.locator(".flash-error")).to_contain_text("video_url")
    expect(page.locator("#test-payload")).to_have_value('{"format": "avi"}')  # the edit is kept


def test_the_keyboard_gets_around(dev: DevServer, client: Client, page: Any) -> None:
    run = client.trigger("echo", {"keys": True})
    page.goto(f"{dev.api_url}/runs")
    page.keyboard.press("g")
    page.keyboard.press("q")
    page.wait_for_url("**/queues")
    page.keyboard.press("g")
    page.keyboard.press("r")
    page.wait_for_url("**/runs")
    page.keyboard.press("/")
    page.keyboard.type(run.id)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{run.id}")
    page.goto(f"{dev.api_url}/runs")
    screenshot(page, "runs")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url("**/runs/run_*")
    page.goto(f"{dev.api_url}/environments")
    screenshot(page, "environments-dev")
    page.goto(f"{dev.api_url}/deploys")
    screenshot(page, "deploys")


def test_a_rate_limited_queue_shows_its_window_and_holds_the_rest(
    dev: DevServer, client: Client, page: Any
) -> None:
    """A queue's rate limit is on the queues page with the starts its window has used, live,
    and a run over the limit stays queued."""
    from playwright.sync_api import expect

    name = unique("rated")
    spec = {"name": name, "rate_limit": {"limit": 2, "period": "10m"}}
    page.goto(f"{dev.api_url}/queues")
    runs = [client.trigger("echo", {"n": n}, queue=spec) for n in range(3)]
    rate = page.locator(f'tr[data-queue="{name}"] [data-rate]')
    expect(rate).to_have_text("rate: 2 / 2 per 600 s", timeout=15_000)  # live, no reload
    expect(page.locator(f'tr[data-queue="{name}"] [data-queued]')).to_have_text("1")
    statuses = sorted(status_of(client, r.id) for r in runs)
    assert statuses == ["COMPLETED", "COMPLETED", "QUEUED"], statuses
    client.runs.cancel(next(r.id for r in runs if status_of(client, r.id) == "QUEUED"))
