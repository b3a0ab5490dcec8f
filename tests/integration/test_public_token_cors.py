"""CORS: a browser page of an allowed origin may call the routes public access tokens open
(reading runs, triggering with a trigger token), preflight included; no other route answers a
browser, whatever the origin, and a server without allowed origins answers none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from conveyor.config import parse_config
from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.errors import ConfigError
from conveyor.server import create_app
from conveyor.server.cors import DEV_ORIGINS, ENV_VAR, parse_origins

if TYPE_CHECKING:
    from conftest import Backend

ORIGINS = ("https://app.example.com", "https://*.shop.example", "http://localhost:*")


@pytest.fixture
def browser(backend: Backend) -> Iterator[TestClient]:
    app = create_app(backend.engine, rate_limit=False, cors_origins=ORIGINS)
    mount_dashboard(app, backend.engine, DashboardSettings())
    with TestClient(app) as client:
        yield client


def preflight(
    client: TestClient, path: str, origin: str, method: str = "GET", headers: str = "authorization"
) -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def public_paths(backend: Backend) -> list[tuple[str, str, str]]:
    run_id = backend.engine.tasks.trigger(backend.env.id, "hello", {}).id
    return [
        ("GET", f"/api/v1/runs/{run_id}", "authorization"),
        ("GET", f"/api/v1/runs/{run_id}/subscribe", "authorization,last-event-id"),
        ("GET", "/api/v1/runs/subscribe?tag=user-42", "authorization"),
        ("GET", f"/api/v1/runs/{run_id}/streams/llm", "authorization,last-event-id"),
        ("POST", "/api/v1/tasks/hello/trigger", "authorization,content-type"),
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://a.shop.example",
        "https://b.a.shop.example",
        "http://localhost:5173",
    ],
)
def test_an_allowed_origin_may_call_the_public_routes(
    browser: TestClient, backend: Backend, origin: str
) -> None:
    for method, path, headers in public_paths(backend):
        answer = preflight(browser, path, origin, method, headers)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == origin
        assert method in answer.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in answer.headers  # a header, no cookie
    run_id = public_paths(backend)[0][1]
    answer = browser.get(run_id, headers={"Origin": origin, "Authorization": "Bearer nope"})
    assert answer.status_code == 401  # a refusal reaches the page too, so it can tell why
    assert answer.headers["access-control-allow-origin"] == origin
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",
        "https://shop.example",
        "https://app.example.com.evil.example",
        "http://localhost.evil.example:80",
        "null",
    ],
)
def test_another_origin_gets_no_cors(browser: TestClient, backend: Backend, origin: str) -> None:
    for method, path, headers in public_paths(backend):
        answer = preflight(browser, path, origin, method, headers)
        assert "access-control-allow-origin" not in answer.headers, (path, origin)
    answer = browser.get(public_paths(backend)[0][1], headers={"Origin": origin})
    assert "access-control-allow-origin" not in answer.headers


def test_other_routes_never_answer_a_browser(browser: TestClient, backend: Backend) -> None:
    run_id = backend.engine.tasks.trigger(backend.env.id, "hello", {}).id
    origin = "https://app.example.com"
    for method, path in [
        ("GET", "/api/v1/runs"),
        ("POST", f"/api/v1/runs/{run_id}/cancel"),
        ("GET", f"/api/v1/runs/{run_id}/logs"),
        ("POST", "/api/v1/tasks/hello/batch"),
        ("POST", "/api/v1/auth/public-tokens"),
        ("POST", "/api/v1/auth/trigger-tokens"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/projects"),
        ("POST", "/api/v1/workers/worker-1/lease"),
        ("GET", "/healthz"),
        ("GET", "/"),
        ("POST", "/login"),
    ]:
        answer = preflight(browser, path, origin, method)
        assert "access-control-allow-origin" not in answer.headers, (method, path)
        assert answer.status_code in (401, 404, 405), (method, path, answer.status_code)
        answer = browser.request(method, path, headers={"Origin": origin})
        assert "access-control-allow-origin" not in answer.headers, (method, path)
    # a public route, asked for a method it does not take
    answer = preflight(browser, f"/api/v1/runs/{run_id}", origin, "DELETE")
    assert answer.status_code == 400
    assert answer.headers.get("access-control-allow-methods") == "GET"


def test_a_server_without_origins_answers_no_browser(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    run_id = backend.engine.tasks.trigger(backend.env.id, "hello", {}).id
    with TestClient(create_app(backend.engine)) as client:
        answer = preflight(client, f"/api/v1/runs/{run_id}", "http://localhost:3000")
        assert answer.status_code == 405
        assert "access-control-allow-origin" not in answer.headers


def test_origins_come_from_the_environment_variable(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "https://a.example, https://b.example")
    run_id = backend.engine.tasks.trigger(backend.env.id, "hello", {}).id
    with TestClient(create_app(backend.engine)) as client:
        for origin in ("https://a.example", "https://b.example"):
            answer = preflight(client, f"/api/v1/runs/{run_id}", origin)
            assert answer.headers["access-control-allow-origin"] == origin
    monkeypatch.setenv(ENV_VAR, "*")
    with TestClient(create_app(backend.engine)) as client:
        answer = preflight(client, f"/api/v1/runs/{run_id}", "https://anywhere.example")
        assert answer.headers["access-control-allow-origin"] == "*"
    monkeypatch.setenv(ENV_VAR, "https://a.example/path")
    with pytest.raises(ConfigError, match=f"{ENV_VAR}: 'https://a.example/path' is not an origin"):
        create_app(backend.engine)


def test_dev_allows_pages_on_this_machine(backend: Backend) -> None:
    """`conveyor dev` allows DEV_ORIGINS: a front end's own dev server on any local port."""
    assert parse_origins(",".join(DEV_ORIGINS)) == DEV_ORIGINS
    run_id = backend.engine.tasks.trigger(backend.env.id, "hello", {}).id
    with TestClient(create_app(backend.engine, cors_origins=DEV_ORIGINS)) as client:
        for origin, allowed in [
            ("http://localhost:5173", True),
            ("http://127.0.0.1:8080", True),
            ("http://[::1]:3000", True),
            ("https://localhost:5173", False),
            ("http://localhost.example:5173", False),
            ("http://192.168.1.5:5173", False),
        ]:
            answer = preflight(client, f"/api/v1/runs/{run_id}", origin)
            assert ("access-control-allow-origin" in answer.headers) is allowed, origin


@pytest.mark.parametrize(
    ("origins", "problem"),
    [
        (["https://app.example.com", "http://localhost:*"], None),
        (["app.example.com"], "realtime.cors_origins value error, 'app.example.com' is not"),
        (["https://a.example/"], None),
        (["ftp://a.example"], "is not an origin"),
        ("https://a.example", "realtime.cors_origins"),
    ],
)
def test_the_config_names_cors_origins(
    tmp_path: Path, origins: object, problem: str | None
) -> None:
    path = tmp_path / "conveyor.toml"
    if problem is None:
        config = parse_config({"realtime": {"cors_origins": origins}}, path)
        assert config.realtime.cors_origins == origins
    else:
        with pytest.raises(ConfigError, match=problem):
            parse_config({"realtime": {"cors_origins": origins}}, path)
    with pytest.raises(ConfigError, match=r"unknown key realtime\.cors_origin; did you mean"):
        parse_config({"realtime": {"cors_origin": []}}, path)
