"""The dashboard's alerts page on both databases: channels listed with their deliveries, a
channel added (its signing secret shown once), tested and deleted through forms that carry the
CSRF token, and bad input shown as one clear message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

from tests.integration.test_dashboard_pages import csrf_of, dashboard  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from conftest import Backend


def test_add_test_and_delete_a_channel_through_the_page(
    dashboard: TestClient, backend: Backend
) -> None:
    engine, env = backend.engine, backend.env
    engine.alerts.create(env.id, event="queue.backlog", email="ops@example.com", backlog=5)
    page = dashboard.get("/alerts")
    assert page.status_code == 200
    assert "ops@example.com" in page.text and "more than 5 for 300s" in page.text
    assert 'href="/alerts"' in page.text  # in the navigation
    csrf = csrf_of(page.text)

    form = {"event": "run.failed", "channel": "webhook", "target": "https://example.com/h"}
    assert dashboard.post("/alerts/create", data=form).status_code == 403  # no CSRF token
    made = dashboard.post("/alerts/create", data={**form, "csrf": csrf, "window": "30s"})
    assert made.status_code == 303 and made.headers["location"] == "/alerts"
    after = dashboard.get("/alerts").text
    assert "shown only this once: whsec_" in after
    secret = after.split("shown only this once: ")[1].split()[0].split("<")[0]
    (channel,) = [c for c in engine.alerts.list(env.id).data if c.event == "run.failed"]
    assert f'data-alert="{channel.id}"' in after and "window 30s" in after
    again = dashboard.get("/alerts").text
    assert secret not in again  # once
    assert (channel.secret_hint or "") in again

    tested = dashboard.post("/alerts/test", data={"csrf": csrf, "id": channel.id})
    assert tested.status_code == 303
    listed = dashboard.get("/alerts").text
    assert "Test alert" in listed and 'data-status="pending"' in listed and "alert.test" in listed

    bad = dashboard.post(
        "/alerts/create",
        data={"csrf": csrf, "event": "run.failed", "channel": "email", "target": "nope"},
    )
    assert bad.status_code in (303, 400)
    shown = dashboard.get("/alerts").text if bad.status_code == 303 else bad.text
    assert "not an email address" in shown

    gone = dashboard.post("/alerts/delete", data={"csrf": csrf, "id": channel.id})
    assert gone.status_code == 303
    final = dashboard.get("/alerts").text
    assert f"Alert {channel.id} deleted." in final and f'data-alert="{channel.id}"' not in final
    assert [c.event for c in engine.alerts.list(env.id).data] == ["queue.backlog"]
