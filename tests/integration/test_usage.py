"""Usage over a real engine on SQLite and PostgreSQL: each attempt's compute seconds (the time it
held a slot) recorded when it ends, a run's over its attempts, and an environment's in a period
per task and machine, through the API, the client's plan and the dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

from tests.integration.conftest import held
from tests.integration.test_dashboard_pages import dashboard  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from conftest import Backend


def trigger(api: TestClient, task: str) -> str:
    response = api.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run_for(backend: Backend, run_id: str, seconds: float, kind: str = "completed") -> None:
    """Lease `run_id`, let `seconds` pass on the engine's clock, and report the attempt."""
    engine = backend.engine
    reply = engine.workers.lease(backend.env.id, "worker-1", capacity=10)
    (spec,) = [a for a in reply.attempts if a.run_id == run_id]
    backend.clock.advance(seconds)
    fields = {"output_json": "{}"} if kind == "completed" else {"error": {"name": "E"}}
    engine.workers.complete("worker-1", [held(engine, run_id, spec.attempt, kind, **fields)])


def test_each_attempt_and_run_records_the_compute_it_used(
    api: TestClient, backend: Backend
) -> None:
    run_id = trigger(api, "encode")  # retries: at most 1 attempt in the test tasks
    run_for(backend, run_id, 4.0)
    run = api.get(f"/api/v1/runs/{run_id}").json()
    (attempt,) = run["attempt_list"]
    assert 3.9 <= attempt["compute_seconds"] < 4.5  # (the test clock moves on by itself a little)
    assert run["compute_seconds"] == attempt["compute_seconds"]


def test_the_usage_of_a_period_counts_attempts_that_ended_in_it_per_task(
    api: TestClient, backend: Backend
) -> None:
    early = trigger(api, "hello")
    run_for(backend, early, 10.0)
    backend.clock.advance(3600)
    cut = datetime.fromtimestamp(backend.clock(), tz=UTC)
    for task, seconds in (("hello", 2.0), ("hello", 3.0), ("other", 1.0)):
        run_for(
            backend, trigger(api, task), seconds, kind="failed" if task == "other" else "completed"
        )
    backend.clock.advance(1)

    recent = api.get("/api/v1/usage", params={"since": cut.isoformat()}).json()
    by_task = {t["task_id"]: t for t in recent["tasks"]}
    assert set(by_task) == {"hello", "other"} and recent["runs"] == 3 and recent["attempts"] == 3
    assert 4.9 <= by_task["hello"]["compute_seconds"] < 5.5  # the early run is out of the period
    assert by_task["hello"]["runs"] == 2 and by_task["hello"]["machine"] == "small-1x"
    assert 0.9 <= by_task["other"]["compute_seconds"] < 1.5  # a failed attempt costs too
    assert [t["task_id"] for t in recent["tasks"]] == ["hello", "other"]  # the most first
    assert (
        abs(recent["compute_seconds"] - sum(t["compute_seconds"] for t in recent["tasks"])) < 1e-6
    )

    everything = api.get("/api/v1/usage").json()  # the last 30 days
    assert 15.8 <= everything["compute_seconds"] < 17.0 and everything["runs"] == 4
    before = api.get("/api/v1/usage", params={"until": cut.isoformat()}).json()
    assert before["runs"] == 1 and before["tasks"][0]["task_id"] == "hello"


def test_usage_is_the_key_environments_own_and_a_bad_period_is_refused(
    api: TestClient, backend: Backend
) -> None:
    run_for(backend, trigger(api, "hello"), 1.0)
    other_key = backend.other_environment()
    theirs = api.get("/api/v1/usage", headers={"Authorization": f"Bearer {other_key}"}).json()
    assert theirs["tasks"] == [] and theirs["compute_seconds"] == 0
    reversed_period = api.get(
        "/api/v1/usage",
        params={"since": "2030-01-02T00:00:00+00:00", "until": "2030-01-01T00:00:00+00:00"},
    )
    assert reversed_period.status_code == 200  # an empty period
    assert reversed_period.json()["tasks"] == [] and reversed_period.json()["attempts"] == 0
    edges = {"since": "0001-01-01T00:00:00+14:00", "until": "9999-12-31T23:59:59-14:00"}
    assert api.get("/api/v1/usage", params=edges).status_code == 200
    bad = api.get("/api/v1/usage", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.json()["error"]["message"]


def test_the_dashboard_shows_the_usage_of_a_period(
    api: TestClient, dashboard: TestClient, backend: Backend
) -> None:
    run_for(backend, trigger(api, "hello"), 7.0)
    page = dashboard.get("/usage?period=24h")
    assert page.status_code == 200
    row = re.search(r'<tr data-task="hello">.*?</tr>', page.text, re.S)
    assert row is not None and "small-1x" in row.group(0)
    compute = re.search(r"<td class=\"num\" data-compute>([0-9.]+)</td>", row.group(0))
    assert compute is not None and 6.9 <= float(compute.group(1)) < 7.6
    assert 'href="/usage"' in page.text  # in the menu
    backend.clock.advance(2 * 86400)
    later = dashboard.get("/usage?period=24h").text
    assert "No attempt ended in this period." in later
    assert 'data-task="hello"' in dashboard.get("/usage?period=7d").text
    assert dashboard.get("/usage?period=bogus").status_code == 200  # the default period
