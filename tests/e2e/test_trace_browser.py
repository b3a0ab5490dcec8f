"""The trace of a fan-out in a real browser: a batch of many children starts folded and
unfolds on a click (and folds again), and the time axis is labelled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Client
from tests.e2e.browser import browser_fixture, page_fixture  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    """The dashboard is the one of `conveyor dev`: its runs are made through its own key."""
    with dev.client() as c:
        yield c


def test_a_big_batch_folds_in_the_trace_and_the_axis_is_labelled(
    dev: DevServer, client: Client, page: Any
) -> None:
    from playwright.sync_api import expect

    fan = client.trigger("fan-out", {"count": 30})
    assert client.runs.poll(fan.id, timeout=90).status == "COMPLETED"
    page.goto(f"{dev.api_url}/runs/{fan.id}")
    children = page.locator("[data-child-run]")
    expect(children).to_have_count(31)  # trigger_and_wait + a batch of 30
    batch = page.locator(".wf-row[data-collapsed]")
    expect(batch).to_have_count(1)
    toggle = batch.locator("[data-wf-toggle]")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    visible = page.locator("[data-child-run]:visible")
    expect(visible).to_have_count(1)  # the batch's 30 are folded away

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(visible).to_have_count(31)
    toggle.click()
    expect(visible).to_have_count(1)

    attempt = page.locator(
        ".wf-row.k-attempt:not(.inherited) [data-wf-toggle]"
    ).first  # any parent row folds
    attempt.click()
    expect(page.locator(".wf-row.k-trigger:visible")).to_have_count(0)
    attempt.click()
    expect(page.locator(".wf-row.k-trigger:visible")).to_have_count(2)

    ticks = page.locator(".wf-axis .wf-tick")
    assert ticks.count() >= 3
    expect(ticks.first).to_have_text("0")
    assert all(label.endswith(("ms", "s")) for label in ticks.all_inner_texts()[1:])
