"""What a newcomer meets first: a task module that fails to import is named (file, line, error)
on the tasks page and in the 404 of a trigger of a task it would define. The console and the
reload rule are tests/e2e/test_first_use.py. `conveyor trigger --wait` shows the status it
waits on and says why nothing picks a run up."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from markupsafe import escape

from conveyor.cli import trigger as trigger_command
from conveyor.cli.main import main
from conveyor.models import ModuleFailure, TriggerOptions
from tests.integration.conftest import KEY, current_fence, task_definitions
from tests.integration.test_dashboard_pages import csrf_of, dashboard  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from conftest import Backend

BROKEN = ModuleFailure(file="tasks/broken.py", line=3, error="SyntaxError: invalid syntax")


def test_a_module_that_failed_to_import_is_named_on_the_tasks_page_and_in_the_404(
    dashboard: TestClient, api: TestClient, backend: Backend
) -> None:
    engine, env_id = backend.engine, backend.env.id
    assert "failed to import" not in dashboard.get("/tasks").text
    engine.workers.set_tasks(
        env_id, task_definitions()[:1]
    )  # a reload where the module of the others failed
    engine.workers.set_load_failures(env_id, [BROKEN])

    page = dashboard.get("/tasks").text
    assert (
        "data-load-failures" in page
        and "tasks/broken.py:3" in page
        and "SyntaxError: invalid syntax" in page
    )
    assert "/tasks/other#test" not in page  # no Test button for a task nothing can run

    response = api.post("/api/v1/tasks/other/trigger", json={"payload": {}})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message == (
        "task 'other' is not defined in this environment; "
        "tasks/broken.py failed to import: SyntaxError: invalid syntax (line 3)"
    )
    batch = api.post("/api/v1/tasks/other/batch", json={"items": [{"payload": {}}]})
    assert batch.status_code == 404 and "tasks/broken.py failed to import" in batch.text

    engine.workers.set_load_failures(env_id, [])  # the module imports again
    assert "data-load-failures" not in dashboard.get("/tasks").text
    assert "check its id" in api.post("/api/v1/tasks/other/trigger", json={"payload": {}}).text


def _wait(live_server: str, task: str, monkeypatch: pytest.MonkeyPatch, *options: str) -> Result:
    monkeypatch.setattr(trigger_command, "HINT_AFTER", 0.3)
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner().invoke(
        main,
        [
            "trigger",
            task,
            "--wait",
            "--timeout",
            "1",
            "--api-url",
            live_server,
            "--secret-key",
            KEY,
            *options,
        ],
        catch_exceptions=False,
    )


def test_wait_shows_the_status_and_says_why_nothing_picks_the_run_up(
    live_server: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _wait(live_server, "hello", monkeypatch)  # no worker runs
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(re.fullmatch(r"Waiting for run_\w+: QUEUED", line) for line in lines), result.stderr
    assert re.search(r"is still QUEUED after \d+ s: no worker has picked it up", result.stderr), (
        result.stderr
    )
    assert "conveyor dev" in result.stderr and "'hello'" in result.stderr
    assert result.stderr.count("no worker has picked it up") == 1  # one hint, not one per poll

    backend.engine.queues.set_paused(backend.env.id, "task/other", True)
    paused = _wait(live_server, "other", monkeypatch)
    assert (
        "its queue 'task/other' is paused; resume it on the dashboard's Queues page or with "
        "`client.queues.resume('task/other')`" in paused.stderr
    )

    # a queue at its rate limit: the run waits for the window, not for a worker
    rated = '{"name": "rated", "rate_limit": {"limit": 1, "period": "1h"}}'
    backend.engine.tasks.trigger(
        backend.env.id, "hello", {}, TriggerOptions.model_validate({"queue": json.loads(rated)})
    )
    backend.engine.workers.lease(backend.env.id, "worker-1", 50)
    held = _wait(live_server, "hello", monkeypatch, "-o", f"queue={rated}")
    assert (
        "its queue 'rated' is at its rate limit (1 starts in the last 3600 s, limit 1)"
        in held.stderr
    ), held.stderr

    def start_it() -> None:  # a worker takes the runs while the command waits
        deadline = time.monotonic() + 0.9
        while time.monotonic() < deadline:
            backend.engine.workers.lease(backend.env.id, "worker-1", 50)
            time.sleep(0.05)

    thread = threading.Thread(target=start_it)
    thread.start()
    started = _wait(live_server, "hello", monkeypatch)
    thread.join()
    assert re.search(r"Waiting for run_\w+: EXECUTING", started.stderr), started.stderr


def _family(backend: Backend) -> tuple[str, list[str], list[str]]:
    """Roots r1 < r2 < r3 (oldest first) with three children of r1 made between r1 and r2."""
    engine, env_id = backend.engine, backend.env.id
    r1 = engine.tasks.trigger(env_id, "hello", {}).id
    children = [engine.tasks.trigger(env_id, "other", {"i": i}, parent_id=r1).id for i in range(3)]
    r2 = engine.tasks.trigger(env_id, "hello", {}).id
    r3 = engine.tasks.trigger(env_id, "hello", {}).id
    return r1, children, [r3, r2, r1]


def test_the_runs_list_shows_roots_with_their_child_count_and_children_on_request(
    api: TestClient,
    dashboard: TestClient,
    live_server: str,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent, children, roots = _family(backend)

    everything = api.get("/api/v1/runs").json()  # the API's default is every run, as before
    assert [r["id"] for r in everything["data"]] == roots[:2] + children[::-1] + [parent]
    counts = {r["id"]: r["child_count"] for r in everything["data"]}
    assert counts[parent] == 3 and counts[roots[0]] == 0 and counts[children[0]] == 0
    first = api.get("/api/v1/runs", params={"roots": "true", "limit": 2}).json()
    assert [r["id"] for r in first["data"]] == roots[:2]
    rest = api.get(
        "/api/v1/runs", params={"roots": "true", "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [r["id"] for r in rest["data"]] == [parent] and rest["data"][0]["child_count"] == 3
    assert rest["next_cursor"] is None

    page = dashboard.get("/runs").text  # the dashboard's default: roots, with their child count
    assert parent in page and 'data-children="3"' in page and "+3 children" in page
    assert not any(child in page for child in children)
    assert 'name="children"' in page
    with_children = dashboard.get("/runs", params={"children": "1"}).text
    assert all(child in with_children for child in children)
    hidden = dashboard.get("/runs", params={"task": "other"}).text
    assert "include child runs" in hidden and "children=1" in hidden

    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def cli(*args: str) -> str:
        result = CliRunner().invoke(
            main,
            ["runs", "list", *args, "--api-url", live_server, "--secret-key", KEY],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    table = cli()
    assert "CHILDREN" in table and not any(child in table for child in children)
    parent_row = next(line for line in table.splitlines() if parent in line)
    assert parent_row.split()[-1] == "3"
    assert all(child in cli("--children") for child in children)
    assert "add --children" in cli("--task", "other")


def test_the_tokens_page_shows_the_waiting_runs_and_the_callback_url_and_keeps_a_refused_body(
    dashboard: TestClient, backend: Backend
) -> None:
    engine, env_id = backend.engine, backend.env.id
    engine.waitpoints.public_url = "http://127.0.0.1:3030"
    token = engine.waitpoints.create_token(env_id)
    idle = engine.waitpoints.create_token(env_id)
    run = engine.tasks.trigger(env_id, "hello", {})
    engine.workers.lease(env_id, "worker-1", 10)
    engine.durable.suspend("worker-1", run.id, 1, [token["id"]], 0.0, current_fence(engine, run.id))
    assert engine.runs.get(env_id, run.id).status == "WAITING"

    page = dashboard.get("/tokens").text
    row = _row(page, token["id"])
    assert f'href="/runs/{run.id}"' in row and "hello" in row
    assert (
        escape(engine.waitpoints.token_url(token["id"]) or "") in row and "data-callback-url" in row
    )
    assert "No run waits on it yet" in _row(page, idle["id"])

    typed = '{"approved": true,}'
    refused = dashboard.post(
        "/tokens/complete", data={"csrf": csrf_of(page), "token_id": token["id"], "data": typed}
    )
    assert refused.status_code == 422
    assert f">{escape(typed)}</textarea>" in refused.text  # the edit is kept, not reset to {}
    assert "the body is not JSON" in refused.text and 'aria-invalid="true"' in refused.text
    assert engine.waitpoints.get_token(env_id, token["id"])["status"] == "PENDING"
    done = dashboard.post(
        "/tokens/complete",
        data={"csrf": csrf_of(page), "token_id": token["id"], "data": '{"approved": true}'},
    )
    assert done.status_code == 303 and engine.waitpoints.get_token(env_id, token["id"])[
        "output"
    ] == {"approved": True}


def _row(page: str, token_id: str) -> str:
    match = re.search(rf'<tr id="{token_id}"[\s\S]*?</tr>', page)
    assert match, f"no row for {token_id}"
    return match.group(0)
