"""The dashboard's environment variables page on both databases: names and hashes listed, a
variable set and unset through forms that carry the CSRF token, and no value on any page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

from tests.integration.test_dashboard_pages import csrf_of, dashboard  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from conftest import Backend

SECRET = "dashboard-secret-value-31c7"


def test_set_list_and_unset_through_the_page_never_show_a_value(
    dashboard: TestClient,
    backend: Backend,
) -> None:
    backend.engine.envvars.set(backend.env.id, "FROM_API", SECRET)
    page = dashboard.get("/envvars")
    assert page.status_code == 200
    assert 'data-variable="FROM_API"' in page.text and SECRET not in page.text
    csrf = csrf_of(page.text)

    refused = dashboard.post("/envvars/set", data={"name": "X", "value": SECRET})
    assert refused.status_code == 403  # no CSRF token
    made = dashboard.post("/envvars/set", data={"csrf": csrf, "name": "TOKEN", "value": SECRET})
    assert made.status_code == 303 and made.headers["location"] == "/envvars"
    after = dashboard.get("/envvars").text
    assert "TOKEN set (hash" in after and 'data-variable="TOKEN"' in after
    assert SECRET not in after
    assert backend.engine.envvars.resolved(backend.env.id)["TOKEN"] == SECRET

    bad = dashboard.post("/envvars/set", data={"csrf": csrf, "name": "CONVEYOR_X", "value": "1"})
    assert bad.status_code in (303, 400)
    shown = dashboard.get("/envvars").text if bad.status_code == 303 else bad.text
    assert "reserved" in shown

    gone = dashboard.post("/envvars/unset", data={"csrf": csrf, "name": "TOKEN"})
    assert gone.status_code == 303
    final = dashboard.get("/envvars").text
    assert "TOKEN unset." in final and 'data-variable="TOKEN"' not in final
    assert SECRET not in final
