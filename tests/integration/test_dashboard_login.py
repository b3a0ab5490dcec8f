"""The dashboard as `conveyor server` serves it: nothing without logging in with a personal
access token; the session is a signed, HttpOnly, SameSite=Lax cookie holding no token; the
environment is one of the user's; a revoked token, logging out or the session's age end the
session on the server, so a copy of the cookie is worth nothing afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.server import create_app

if TYPE_CHECKING:
    from conftest import Backend


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


@pytest.fixture
def server(backend: Backend) -> Iterator[TestClient]:
    app = create_app(backend.engine)
    mount_dashboard(app, backend.engine, DashboardSettings())
    with TestClient(app, base_url="https://conveyor.example", follow_redirects=False) as client:
        yield client


def log_in(client: TestClient, token: str) -> TestClient:
    csrf = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": csrf, "token": token, "next": "/runs"})
    assert response.status_code == 303, response.text
    return client


def test_pages_need_a_login(server: TestClient) -> None:
    for path in (
        "/runs",
        "/runs/run_x",
        "/tasks",
        "/queues",
        "/tokens",
        "/environments",
        "/api-keys",
        "/deploys",
    ):
        response = server.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    assert server.get("/runs/stream", headers={"Accept": "text/event-stream"}).status_code == 401
    assert server.get("/login").status_code == 200


def test_a_wrong_token_or_a_forged_cookie_logs_nobody_in(
    server: TestClient, backend: Backend
) -> None:
    backend.engine.accounts.bootstrap_admin()
    csrf = csrf_of(server.get("/login").text)
    refused = server.post("/login", data={"csrf": csrf, "token": "cv_pat_" + "0" * 40})
    assert refused.status_code == 401 and "not a live personal access token" in refused.text
    assert (
        server.post("/login", data={"csrf": csrf, "token": backend.key}).status_code == 401
    )  # an environment key
    assert server.post("/login", data={"token": "anything"}).status_code == 403  # no CSRF token
    server.cookies.set("conveyor_session", "eyJ0b2tlbl9oYXNoIjoieCJ9.forged")
    assert server.get("/runs").status_code == 303


def test_logging_in_sets_a_safe_cookie_and_shows_the_users_environment(
    server: TestClient, backend: Backend
) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {})
    csrf = csrf_of(server.get("/login").text)
    response = server.post("/login", data={"csrf": csrf, "token": token, "next": "/runs"})
    assert response.status_code == 303 and response.headers["location"] == "/runs"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert token.lower() not in cookie  # only the token's hash, signed
    listing = server.get("/runs")
    assert listing.status_code == 200 and run.id in listing.text
    assert "admin" in listing.text
    assert server.get("/api-keys").status_code == 200


def test_the_environment_is_chosen_among_the_users_own(
    server: TestClient, backend: Backend
) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    caller = backend.engine.accounts.authenticate(token)
    assert caller is not None
    other = backend.engine.accounts.create_project(caller, "Billing")
    prod = next(env for env in other.environments if env.slug == "prod")
    theirs = backend.engine.tasks.trigger(backend.env.id, "hello", {})
    log_in(server, token)
    csrf = csrf_of(server.get("/environments").text)
    assert "Billing" in server.get("/environments").text
    chosen = server.post("/environments/select", data={"csrf": csrf, "env_id": prod.id})
    assert chosen.status_code == 303
    assert theirs.id not in server.get("/runs").text
    assert server.get(f"/runs/{theirs.id}").status_code == 404
    assert (
        server.post(
            "/environments/select", data={"csrf": csrf, "env_id": "env_nobodys"}
        ).status_code
        == 404
    )
    keys = server.get("/api-keys").text
    assert "cv_prod_" in keys and "cv_stg_" in keys
    rotated = server.post("/api-keys/rotate", data={"csrf": csrf, "env": "prod"})
    assert rotated.status_code == 303


def test_a_revoked_token_ends_the_session(server: TestClient, backend: Backend) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    log_in(server, token)
    assert server.get("/runs").status_code == 200
    backend.engine.accounts.new_admin_token()  # revokes the earlier admin token
    assert server.get("/runs").status_code == 303


def test_logging_out_ends_the_session(server: TestClient, backend: Backend) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    log_in(server, token)
    csrf = csrf_of(server.get("/runs").text)
    assert server.post("/logout", data={"csrf": csrf}).headers["location"] == "/login"
    assert server.get("/runs").status_code == 303


def test_a_cookie_kept_from_before_logging_out_is_refused(
    server: TestClient, backend: Backend
) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    log_in(server, token)
    kept = server.cookies.get("conveyor_session")
    assert kept
    other = log_in(
        TestClient(server.app, base_url="https://conveyor.example", follow_redirects=False), token
    )
    csrf = csrf_of(server.get("/runs").text)
    server.post("/logout", data={"csrf": csrf})
    server.cookies.clear()
    server.cookies.set(
        "conveyor_session", kept, domain="conveyor.example"
    )  # copied while it was live
    assert server.get("/runs").status_code == 303
    assert other.get("/runs").status_code == 200  # the user's other sessions are their own


def test_a_session_ends_at_its_max_age_whatever_the_cookie_says(backend: Backend) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    app = create_app(backend.engine)
    mount_dashboard(app, backend.engine, DashboardSettings(session_max_age=60))
    with TestClient(app, base_url="https://conveyor.example", follow_redirects=False) as client:
        log_in(client, token)
        assert client.get("/runs").status_code == 200
        backend.clock.advance(61)  # the server's own record expires, not only the cookie
        assert client.get("/runs").status_code == 303


def test_login_sends_nobody_to_another_site(server: TestClient, backend: Backend) -> None:
    token = backend.engine.accounts.bootstrap_admin()
    assert token is not None
    csrf = csrf_of(server.get("/login").text)
    response = server.post(
        "/login", data={"csrf": csrf, "token": token, "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/runs"
