"""The dashboard's alerts page in a real browser, on `conveyor dev`: a webhook channel added from
the form (its signing secret shown once), a failing task's alert reaching a real HTTP receiver
signed with that secret, the delivery listed as delivered, a test alert sent from the page, and
the channel deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Client, webhooks
from tests.e2e.browser import browser_fixture, page_fixture, screenshot  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer
from tests.receivers import HttpReceiver, http_receiver


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    with dev.client() as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as got:
        yield got


def test_add_a_channel_see_its_delivery_test_and_delete_it(
    dev: DevServer, client: Client, page: Any, receiver: HttpReceiver
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.api_url}/runs")
    page.locator('nav a[href="/alerts"]').click()
    expect(page.locator("h1")).to_have_text("Alerts")
    form = page.locator("form.alert-form")
    form.locator('select[name="event"]').select_option("run.failed")
    form.locator('select[name="channel"]').select_option("webhook")
    form.locator('input[name="target"]').fill(receiver.url + "/browser")
    form.locator('input[name="task"]').fill("aborter")
    form.locator('input[name="window"]').fill("1s")
    form.get_by_role("button", name="Add").click()
    flash = page.locator(".flash")
    expect(flash).to_contain_text("shown only this once: whsec_")
    secret = flash.inner_text().split("shown only this once: ")[1].strip()
    row = page.locator("table.alerts tbody tr[data-alert]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("window 1s")

    run = client.trigger("aborter", {})
    assert client.runs.poll(run.id, timeout=30).status == "FAILED"
    (request,) = receiver.wait_for(1, timeout=20)
    webhooks.verify(request.body, request.headers["Conveyor-Signature"], secret)
    assert request.json()["data"]["run_ids"] == [run.id]

    deadline = time.monotonic() + 10
    while True:
        page.reload()
        delivered = page.locator('table.deliveries tr[data-status="delivered"]')
        if delivered.count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    expect(delivered).to_have_count(1)
    expect(delivered.locator(f'a[href="/runs/{run.id}"]')).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(secret)  # shown once only
    screenshot(page, "alerts")

    page.locator("table.alerts").get_by_role("button", name="Test").click()
    expect(page.locator(".flash")).to_contain_text("Test alert")
    tests = receiver.wait_for(2, timeout=10)
    assert tests[1].json()["event"] == "alert.test"

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("table.alerts").get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("deleted")
    expect(page.locator("table.alerts tbody tr[data-alert]")).to_have_count(0)
    assert client.alerts.list() == []
