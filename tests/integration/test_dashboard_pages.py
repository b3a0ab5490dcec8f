"""The dashboard in-process, as `conveyor dev` serves it (no login, this machine only): every
page renders real data of its environment and nothing of another, every form needs its CSRF
token, deployed versions are listed and promoted (and dev says it has none), and the API's
OpenAPI document knows nothing of the dashboard. Browser behaviour (live
updates, clicks) is tests/e2e/test_dashboard_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import LogEntry
from conveyor.server import create_app
from tests.bundles import small_bundle
from tests.integration.conftest import current_fence, held

if TYPE_CHECKING:
    from conftest import Backend

LOCAL = ("127.0.0.1", 50000)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


@pytest.fixture
def dashboard(backend: Backend) -> Iterator[TestClient]:
    app = create_app(backend.engine)
    mount_dashboard(
        app,
        backend.engine,
        DashboardSettings(local_env_id=backend.env.id, local_secret_key=backend.key),
    )
    with TestClient(
        app, base_url="http://127.0.0.1:3030", client=LOCAL, follow_redirects=False
    ) as client:
        yield client


def finish(backend: Backend, run_id: str, output: str = '{"ok": true}') -> None:
    """Lease the run on worker-1 and complete it, with a log line."""
    reply = backend.engine.workers.lease(backend.env.id, "worker-1", 10)
    assert run_id in [a.run_id for a in reply.attempts]
    backend.engine.workers.append_logs(
        [
            LogEntry(
                run_id,
                1,
                0,
                backend.clock(),
                "INFO",
                "resizing",
                {"width": 640},
                current_fence(backend.engine, run_id),
            )
        ]
    )
    backend.engine.workers.complete(
        "worker-1", [held(backend.engine, run_id, 1, "completed", output_json=output)]
    )


def test_every_page_renders_for_this_machine(dashboard: TestClient, backend: Backend) -> None:
    run = backend.engine.tasks.trigger(
        backend.env.id, "hello", {"name": "Ada"}, TriggerOptions(tags=["vip"])
    )
    finish(backend, run.id)
    token = backend.engine.waitpoints.create_token(backend.env.id, tags=["approval"])
    assert dashboard.get("/").headers["location"] == "/runs"
    for path in (
        "/runs",
        f"/runs/{run.id}",
        "/tasks",
        "/tasks/hello",
        "/tasks/process-video",
        "/queues",
        "/schedules",
        "/tokens",
        "/environments",
        "/api-keys",
        "/deploys",
    ):
        response = dashboard.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "text/html" in response.headers["content-type"]
        assert response.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in response.headers["content-security-policy"]
    listing = dashboard.get("/runs").text
    assert run.id in listing and "vip" in listing and "COMPLETED" in listing
    page = dashboard.get(f"/runs/{run.id}").text
    assert "resizing" in page and "width" in page and "attempt 1" in page and "Ada" in page
    assert token["id"] in dashboard.get("/tokens").text
    assert backend.key in dashboard.get("/api-keys").text
    assert "task/hello" in dashboard.get("/queues").text
    tenants = QueueSpec(
        name="tenants", rate_limit={"limit": 5, "period": "1m"}, weights={"vip": 3, "free": 1}
    )
    backend.engine.tasks.trigger(backend.env.id, "hello", {}, TriggerOptions(queue=tenants))
    row = re.search(r'<tr data-queue="tenants">.*?</tr>', dashboard.get("/queues").text, re.S)
    assert row is not None
    assert "rate: 0 / 5 per 60 s" in row.group(0) and "weights: free ×1, vip ×3" in row.group(0)
    schema_page = dashboard.get("/tasks/process-video").text
    assert (
        "video_url" in schema_page and "&#34;format&#34;: &#34;mp4&#34;" in schema_page
    )  # the example payload


def test_the_list_filters_and_searches(dashboard: TestClient, backend: Backend) -> None:
    hello = backend.engine.tasks.trigger(backend.env.id, "hello", {}, TriggerOptions(tags=["blue"]))
    other = backend.engine.tasks.trigger(
        backend.env.id, "other", {}, TriggerOptions(tags=["green"])
    )
    by_task = dashboard.get("/runs", params={"task": "other"}).text
    assert other.id in by_task and hello.id not in by_task
    by_tag = dashboard.get("/runs", params={"tag": "blue"}).text
    assert hello.id in by_tag and other.id not in by_tag
    assert hello.id not in dashboard.get("/runs", params={"status": "failed"}).text
    assert hello.id in dashboard.get("/runs", params={"status": "active", "period": "1h"}).text
    assert hello.id not in dashboard.get("/runs", params={"to": "2001-01-01T00:00"}).text
    found = dashboard.get("/runs", params={"q": hello.id})
    assert found.status_code == 303 and found.headers["location"] == f"/runs/{hello.id}"
    assert "No run" in dashboard.get("/runs", params={"q": "run_nope"}).text
    assert dashboard.get("/runs", params={"period": "forever"}).status_code == 400


def test_no_page_shows_another_environment(dashboard: TestClient, backend: Backend) -> None:
    backend.other_environment()
    other_env = backend.engine.environments.ensure("proj_test", "staging", "staging")
    backend.engine.workers.register(
        other_env.id, "worker-2", "worker-2", backend.engine.tasks.list(backend.env.id)
    )
    foreign = backend.engine.tasks.trigger(other_env.id, "hello", {"secret": "theirs"})
    token = backend.engine.waitpoints.create_token(other_env.id)
    assert foreign.id not in dashboard.get("/runs").text
    assert dashboard.get(f"/runs/{foreign.id}").status_code == 404
    assert dashboard.get(f"/runs/{foreign.id}/stream").status_code == 404
    assert token["id"] not in dashboard.get("/tokens?status=ALL").text
    page = dashboard.get("/runs")
    refused = dashboard.post(f"/runs/{foreign.id}/cancel", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 404
    assert backend.engine.runs.get(other_env.id, foreign.id).status == "QUEUED"
    completed = dashboard.post(
        "/tokens/complete", data={"csrf": csrf_of(page.text), "token_id": token["id"], "data": "{}"}
    )
    assert completed.status_code == 404
    assert (
        dashboard.post(
            "/environments/select", data={"csrf": csrf_of(page.text), "env_id": other_env.id}
        ).status_code
        == 404
    )


def test_forms_need_the_session_csrf_token(dashboard: TestClient, backend: Backend) -> None:
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {})
    assert dashboard.post(f"/runs/{run.id}/cancel").status_code == 403
    assert dashboard.post(f"/runs/{run.id}/cancel", data={"csrf": "forged"}).status_code == 403
    csrf = csrf_of(dashboard.get(f"/runs/{run.id}").text)
    from_elsewhere = dashboard.post(
        f"/runs/{run.id}/cancel", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert from_elsewhere.status_code == 403
    assert backend.engine.runs.get(backend.env.id, run.id).status == "QUEUED"
    done = dashboard.post(
        f"/runs/{run.id}/cancel", data={"csrf": csrf}, headers={"Origin": "http://127.0.0.1:3030"}
    )
    assert done.status_code == 303
    assert backend.engine.runs.get(backend.env.id, run.id).status == "CANCELED"
    cookie = done.headers.get("set-cookie") or dashboard.get("/runs").headers.get("set-cookie", "")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_actions_change_state_through_the_engine(dashboard: TestClient, backend: Backend) -> None:
    csrf = csrf_of(dashboard.get("/queues").text)
    assert (
        dashboard.post("/queues/pause", data={"csrf": csrf, "name": "task/hello"}).status_code
        == 303
    )
    assert backend.engine.queues.get(backend.env.id, "task/hello").paused
    assert (
        dashboard.post(
            "/queues/limit", data={"csrf": csrf, "name": "task/hello", "limit": "3"}
        ).status_code
        == 303
    )
    assert backend.engine.queues.get(backend.env.id, "task/hello").concurrency_limit == 3
    assert (
        dashboard.post(
            "/queues/limit", data={"csrf": csrf, "name": "task/hello", "limit": "-2"}
        ).status_code
        == 400
    )
    assert (
        dashboard.post(
            "/queues/limit", data={"csrf": csrf, "name": "task/hello", "limit": ""}
        ).status_code
        == 303
    )
    assert backend.engine.queues.get(backend.env.id, "task/hello").override_limit is None
    assert (
        dashboard.post("/queues/resume", data={"csrf": csrf, "name": "task/hello"}).status_code
        == 303
    )
    assert not backend.engine.queues.get(backend.env.id, "task/hello").paused

    made = dashboard.post(
        "/tasks/hello/trigger", data={"csrf": csrf, "payload": '{"n": 1}', "tags": "test, ui"}
    )
    assert made.status_code == 303
    run_id = made.headers["location"].removeprefix("/runs/")
    run = backend.engine.runs.get(backend.env.id, run_id)
    assert run.payload == {"n": 1} and run.tags == ["test", "ui"]
    bad = dashboard.post(
        "/tasks/process-video/trigger", data={"csrf": csrf, "payload": '{"format": "avi"}'}
    )
    assert (
        bad.status_code == 422 and "video_url" in bad.text and "avi" in bad.text
    )  # the edited text is kept
    assert (
        dashboard.post("/tasks/hello/trigger", data={"csrf": csrf, "payload": "{nope"}).status_code
        == 422
    )

    replayed = dashboard.post(f"/runs/{run_id}/replay", data={"csrf": csrf, "payload": '{"n": 2}'})
    assert replayed.status_code == 303
    copy = backend.engine.runs.get(
        backend.env.id, replayed.headers["location"].removeprefix("/runs/")
    )
    assert copy.payload == {"n": 2} and copy.replayed_from == run_id
    assert (
        dashboard.post(f"/runs/{run_id}/replay", data={"csrf": csrf, "payload": "[1,"}).status_code
        == 422
    )

    token = backend.engine.waitpoints.create_token(backend.env.id)
    assert (
        dashboard.post(
            "/tokens/complete", data={"csrf": csrf, "token_id": token["id"], "data": '{"ok": 1}'}
        ).status_code
        == 303
    )
    assert backend.engine.waitpoints.get_token(backend.env.id, token["id"])["output"] == {"ok": 1}


def test_the_dev_dashboard_answers_only_this_machine(backend: Backend) -> None:
    app = create_app(backend.engine)
    mount_dashboard(app, backend.engine, DashboardSettings(local_env_id=backend.env.id))
    with TestClient(app, base_url="http://127.0.0.1:3030", client=("192.168.1.20", 5000)) as client:
        assert client.get("/runs").status_code == 403
    with TestClient(
        app, base_url="http://attacker.example", client=LOCAL
    ) as client:  # a rebound DNS name
        assert client.get("/runs").status_code == 403


def test_the_openapi_document_has_no_dashboard_routes(dashboard: TestClient) -> None:
    paths = dashboard.get("/openapi.json").json()["paths"]
    assert all(path.startswith(("/api/", "/healthz", "/readyz", "/metrics")) for path in paths)


def test_the_vendored_front_end_is_served_with_its_license(dashboard: TestClient) -> None:
    for name in ("htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.min.js", "LICENSES.txt"):
        assert dashboard.get(f"/static/vendor/{name}").status_code == 200
    assert "0BSD" in dashboard.get("/static/vendor/LICENSES.txt").text


@pytest.fixture
def prod_dashboard(backend: Backend) -> Iterator[tuple[TestClient, str]]:
    """The dashboard of the project's prod environment (this machine, no login); and its env id."""
    prod = backend.engine.environments.ensure("proj_test", "prod", "prod")
    app = create_app(backend.engine)
    mount_dashboard(app, backend.engine, DashboardSettings(local_env_id=prod.id))
    with TestClient(
        app, base_url="http://127.0.0.1:3030", client=LOCAL, follow_redirects=False
    ) as client:
        yield client, prod.id


def deploy_version(backend: Backend, env_id: str, commit: str, *task_ids: str) -> str:
    tasks = [
        TaskDefinition(id=t, queue=QueueSpec(name=f"task/{t}"), retry=RetryPolicy())
        for t in task_ids
    ]
    made = backend.engine.deployments.deploy(
        env_id,
        tasks,
        small_bundle(commit),
        lock_sha256="0" * 64,
        details={"git": {"branch": "main", "commit": commit}},
    )
    return made.version


def test_deploys_lists_the_versions_and_promotes_an_older_one(
    prod_dashboard: tuple[TestClient, str], backend: Backend
) -> None:
    dashboard, prod = prod_dashboard
    empty = dashboard.get("/deploys")
    assert empty.status_code == 200 and "Nothing is deployed to prod yet" in empty.text
    first = deploy_version(backend, prod, "41aa7b0c" + "0" * 32, "hello")
    second = deploy_version(backend, prod, "9c1d2e3f" + "0" * 32, "hello", "other")
    page = dashboard.get("/deploys").text
    rows = re.findall(r'<tr data-version="([^"]+)"( data-current)?>', page)
    assert rows == [(second, " data-current"), (first, "")]  # newest first, the new one current
    assert "41aa7b0c" in page and "9c1d2e3f" in page
    assert re.search(rf'data-version="{re.escape(second)}".*?data-tasks[^>]*>2<', page, re.S)
    assert re.search(rf'data-version="{re.escape(first)}".*?data-tasks[^>]*>1<', page, re.S)
    assert page.count('action="/deploys/promote"') == 1  # only the version that is not current

    done = dashboard.post("/deploys/promote", data={"csrf": csrf_of(page), "version": first})
    assert done.status_code == 303 and done.headers["location"] == "/deploys"
    assert backend.engine.deployments.current_version(prod) == first
    after = dashboard.get("/deploys").text
    assert f"{first} is current in prod" in after  # the flash
    assert re.findall(r'<tr data-version="([^"]+)"( data-current)?>', after) == [
        (second, ""),
        (first, " data-current"),
    ]
    assert backend.engine.deployments.get(prod, "current").version == first


def test_promoting_needs_the_csrf_token_and_a_deployed_version(
    prod_dashboard: tuple[TestClient, str], backend: Backend
) -> None:
    dashboard, prod = prod_dashboard
    first = deploy_version(backend, prod, "a" * 40, "hello")
    second = deploy_version(backend, prod, "b" * 40, "hello")
    assert dashboard.post("/deploys/promote", data={"version": first}).status_code == 403
    assert (
        dashboard.post("/deploys/promote", data={"version": first, "csrf": "forged"}).status_code
        == 403
    )
    csrf = csrf_of(dashboard.get("/deploys").text)
    elsewhere = dashboard.post(
        "/deploys/promote",
        data={"csrf": csrf, "version": first},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert backend.engine.deployments.current_version(prod) == second
    unknown = dashboard.post("/deploys/promote", data={"csrf": csrf, "version": "20000101.9"})
    assert unknown.status_code == 404 and "not deployed" in unknown.text
    assert backend.engine.deployments.current_version(prod) == second


def test_dev_has_no_deploys_and_says_it_runs_local_code(dashboard: TestClient) -> None:
    page = dashboard.get("/deploys")
    assert page.status_code == 200
    assert (
        "runs the code of your project folder" in page.text
        and 'action="/deploys/promote"' not in page.text
    )
    refused = dashboard.post(
        "/deploys/promote", data={"csrf": csrf_of(page.text), "version": "20270115.1"}
    )
    assert refused.status_code == 400 and "dev takes no deploys" in refused.text


def test_a_large_payload_and_output_show_their_start_and_download_whole(
    dashboard: TestClient, backend: Backend
) -> None:
    big = {"blob": "x" * (3 * 1024 * 1024), "tail": "the end"}
    run = backend.engine.tasks.trigger(backend.env.id, "hello", big)
    finish(backend, run.id, output=json.dumps({"result": "y" * (2 * 1024 * 1024)}))
    page = dashboard.get(f"/runs/{run.id}")
    assert page.status_code == 200
    assert len(page.text) < 300 * 1024, "the page carries the whole values"
    assert "Showing the start of 3.0 MB" in page.text and "Showing the start of 2.0 MB" in page.text
    assert "too large to edit here" in page.text and 'id="replay-payload"' not in page.text
    payload = dashboard.get(f"/runs/{run.id}/payload.json")
    assert payload.status_code == 200 and payload.json() == big
    assert "attachment" in payload.headers["content-disposition"]
    assert dashboard.get(f"/runs/{run.id}/output.json").json() == {
        "result": "y" * (2 * 1024 * 1024)
    }
    assert dashboard.get(f"/runs/{run.id}/secrets.json").status_code == 404

    csrf = csrf_of(page.text)
    replayed = dashboard.post(f"/runs/{run.id}/replay", data={"csrf": csrf, "same": "1"})
    assert replayed.status_code == 303
    copy = backend.engine.runs.get(
        backend.env.id, replayed.headers["location"].removeprefix("/runs/")
    )
    assert copy.payload == big and copy.replayed_from == run.id

    small = backend.engine.tasks.trigger(backend.env.id, "hello", {"n": 1})
    shown = dashboard.get(f"/runs/{small.id}").text
    assert "Showing the start" not in shown and 'id="replay-payload"' in shown
