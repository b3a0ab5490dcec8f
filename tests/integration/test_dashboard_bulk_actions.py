"""The runs list's bulk actions in the dashboard (in-process, SQLite and PostgreSQL): with
filters, "Cancel all matching" and "Replay all matching" forms that carry the filters and the
CSRF token, an action started from them, its progress above the list, and a stop button."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

from conveyor.models import RunStatus, TriggerOptions
from tests.integration.test_dashboard_pages import csrf_of, dashboard  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from tests.integration.conftest import Backend


def test_the_list_offers_bulk_actions_only_for_filtered_runs(
    dashboard: TestClient, backend: Backend
) -> None:
    assert "data-bulk-cancel" not in dashboard.get("/runs").text
    page = dashboard.get("/runs", params={"task": "hello", "status": "QUEUED"}).text
    assert "Cancel all matching" in page and "Replay all matching" in page
    assert 'name="task" value="hello"' in page and 'name="status" value="QUEUED"' in page
    assert "data-confirm=" in page


def test_cancel_all_matching_cancels_them_and_shows_progress(
    dashboard: TestClient, backend: Backend
) -> None:
    engine, env = backend.engine, backend.env
    hello = [engine.tasks.trigger(env.id, "hello", {"i": i}) for i in range(3)]
    vip = engine.tasks.trigger(env.id, "other", {}, TriggerOptions(tags=["vip"]))
    csrf = csrf_of(dashboard.get("/runs", params={"task": "hello"}).text)
    assert dashboard.post("/runs/bulk", data={"kind": "cancel", "task": "hello"}).status_code == 403

    sent = dashboard.post(
        "/runs/bulk", data={"csrf": csrf, "kind": "cancel", "task": "hello", "period": "1h"}
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/runs?task=hello&period=1h"
    page = dashboard.get(sent.headers["location"]).text
    assert "started on 3 matching unfinished runs" in page
    assert 'data-status="RUNNING"' in page and ">Stop</button>" in page

    backend.clock.advance(0.01)
    engine.tick()
    page = dashboard.get("/runs", params={"task": "hello"}).text
    assert 'data-status="COMPLETED"' in page and "3 of 3" in page
    assert {engine.runs.get(env.id, r.id).status for r in hello} == {RunStatus.CANCELED}
    assert engine.runs.get(env.id, vip.id).status is RunStatus.QUEUED


def test_replay_all_matching_and_stopping_and_refusals(
    dashboard: TestClient, backend: Backend
) -> None:
    engine, env = backend.engine, backend.env
    engine.tasks.trigger(env.id, "other", {}, TriggerOptions(tags=["vip"]))
    csrf = csrf_of(dashboard.get("/runs", params={"tag": "vip"}).text)
    sent = dashboard.post("/runs/bulk", data={"csrf": csrf, "kind": "replay", "tag": "vip"})
    assert sent.status_code == 303
    (action,) = engine.bulk.list(env.id)
    assert (action.kind, action.total, action.filters.tag) == ("replay", 1, "vip")
    stopped = dashboard.post(f"/runs/bulk/{action.id}/stop", data={"csrf": csrf})
    assert stopped.status_code == 303
    assert "stopped after 0 runs" in dashboard.get("/runs").text
    assert engine.bulk.get(env.id, action.id).status == "CANCELED"

    again = dashboard.post(f"/runs/bulk/{action.id}/stop", data={"csrf": csrf})
    assert "already ended CANCELED" in dashboard.get(again.headers["location"]).text
    nothing = dashboard.post("/runs/bulk", data={"csrf": csrf, "kind": "cancel"})
    assert "at least one filter" in dashboard.get(nothing.headers["location"]).text
    ended = dashboard.post("/runs/bulk", data={"csrf": csrf, "kind": "cancel", "status": "failed"})
    assert "cannot be canceled" in dashboard.get(ended.headers["location"]).text
