"""The dashboard of a real `conveyor server` in a real browser: the admin logs in with the token
the server printed, views the environments of their project, sees a run of prod only while
viewing prod (the dev environment shows nothing of it), and logs out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Client
from tests.e2e.browser import browser_fixture, page_fixture, screenshot  # noqa: F401 - fixtures
from tests.e2e.conftest import ServerProcess, WorkerProcess, make_project

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        root=make_project(tmp_path), database_url=f"sqlite:///{tmp_path / 'conveyor.db'}"
    )
    yield process
    process.stop()


def test_log_in_choose_an_environment_and_log_out(server: ServerProcess, page: Any) -> None:
    from playwright.sync_api import expect

    match = TOKEN.search(server.start())
    assert match, server.output()
    token = match.group(0)
    headers = {"Authorization": f"Bearer {token}"}
    project = httpx.post(
        f"{server.api_url}/api/v1/projects", json={"name": "Shop"}, headers=headers
    ).json()
    prod_key = httpx.get(
        f"{server.api_url}/api/v1/projects/{project['id']}/environments/prod/key", headers=headers
    ).json()["secret_key"]
    server.secret_key = prod_key
    worker = WorkerProcess(server, "prod-worker")
    worker.start()
    try:
        with Client(server.api_url, prod_key) as client:
            run = client.trigger("echo", {"from": "prod"}, tags=["prod"])
            client.runs.poll(run.id, timeout=30)

        page.goto(f"{server.api_url}/runs")
        page.wait_for_url("**/login?next=%2Fruns")
        screenshot(page, "login", full_page=False)
        page.fill("#token", "cv_pat_" + "0" * 40)
        page.click('button:has-text("Log in")')
        expect(page.locator(".flash-error")).to_contain_text("not a live personal access token")
        page.fill("#token", token)
        page.click('button:has-text("Log in")')
        page.wait_for_url("**/runs")
        expect(page.locator(".flash")).to_contain_text("Logged in as admin")
        cookie = next(c for c in page.context.cookies() if c["name"] == "conveyor_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and token not in cookie["value"]

        # the first environment is dev: the prod run is not there, not even by its id
        expect(page.locator("#env-select")).to_have_value(project["environments"][0]["id"])
        expect(page.locator(f'tr[data-id="{run.id}"]')).to_have_count(0)
        assert page.goto(f"{server.api_url}/runs/{run.id}").status == 404

        prod = next(env for env in project["environments"] if env["slug"] == "prod")
        page.goto(f"{server.api_url}/runs")
        page.select_option("#env-select", prod["id"])  # submits by itself
        expect(page.locator(".flash")).to_contain_text("Viewing Shop / prod")
        expect(page.locator(f'tr[data-id="{run.id}"]')).to_be_visible()
        page.goto(f"{server.api_url}/runs/{run.id}")
        expect(page.locator("#run-status")).to_have_text("COMPLETED")

        page.goto(f"{server.api_url}/environments")
        expect(page.locator("h2", has_text="Shop")).to_be_visible()
        screenshot(page, "environments")
        page.goto(f"{server.api_url}/api-keys")
        expect(page.locator('tr[data-env="prod"] [data-secret]')).to_have_text(prod_key)
        screenshot(page, "api-keys")

        page.click('button:has-text("Log out")')
        page.wait_for_url("**/login")
        assert page.goto(f"{server.api_url}/queues").url.endswith("/login?next=%2Fqueues")
    finally:
        worker.stop()
