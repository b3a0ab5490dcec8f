"""Rate limits per API key over HTTP: 429 with Retry-After and the JSON error shape, one
bucket per key, the worker protocol and keyless requests untouched, and clients that wait
and send again."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from conveyor.client import AsyncClient, Client
from conveyor.errors import ConfigError, RateLimited
from conveyor.server import create_app
from conveyor.server.ratelimit import RateLimit

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")


def limited_app(backend: Backend, limit: RateLimit) -> TestClient:
    return TestClient(
        create_app(backend.engine, rate_limit=limit),
        headers={"Authorization": f"Bearer {backend.key}"},
    )


@pytest.fixture
def tight(backend: Backend) -> Iterator[TestClient]:
    with limited_app(backend, RateLimit(rate=0.5, burst=3)) as client:
        yield client


def test_a_key_over_its_limit_gets_429_with_retry_after(tight: TestClient) -> None:
    assert [tight.get("/api/v1/runs").status_code for _ in range(3)] == [200, 200, 200]
    refused = tight.get("/api/v1/runs")
    assert refused.status_code == 429
    # one request refills in 1 / 0.5 s, less what passed since the burst (on a busy machine the
    # three requests may take a second): the seconds until then, rounded up
    wait = refused.headers["retry-after"]
    assert wait in ("1", "2"), wait
    assert refused.json()["error"]["code"] == "rate_limited"
    assert set(refused.json()) == {"error"}
    assert f"retry after {wait}s" in refused.json()["error"]["message"]


def test_a_refused_trigger_creates_nothing(tight: TestClient, backend: Backend) -> None:
    for _ in range(3):
        assert tight.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).status_code == 201
    assert tight.post("/api/v1/tasks/hello/trigger", json={"payload": {}}).status_code == 429
    assert len(backend.engine.runs.list(backend.env.id)[0]) == 3


def test_each_key_has_its_own_limit(tight: TestClient, backend: Backend) -> None:
    other = {"Authorization": f"Bearer {backend.other_environment()}"}
    for _ in range(3):
        tight.get("/api/v1/queues")
    assert tight.get("/api/v1/queues").status_code == 429
    assert tight.get("/api/v1/queues", headers=other).status_code == 200


def test_the_worker_protocol_is_not_limited(tight: TestClient) -> None:
    for _ in range(10):
        response = tight.post("/api/v1/workers/worker-1/heartbeat", json={"running": []})
        assert response.status_code == 200, response.text


def test_keyless_requests_are_not_counted(tight: TestClient) -> None:
    for _ in range(5):
        assert tight.get("/api/v1/runs", headers={"Authorization": ""}).status_code == 401
    assert tight.get("/healthz").status_code == 200
    assert tight.get("/api/v1/runs").status_code == 200


def test_the_limit_comes_from_the_environment_variable(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_RATE_LIMIT", "1,2")
    with TestClient(
        create_app(backend.engine), headers={"Authorization": f"Bearer {backend.key}"}
    ) as client:
        assert [client.get("/api/v1/tasks").status_code for _ in range(3)] == [200, 200, 429]
    monkeypatch.setenv("CONVEYOR_RATE_LIMIT", "off")
    with TestClient(
        create_app(backend.engine), headers={"Authorization": f"Bearer {backend.key}"}
    ) as client:
        assert {client.get("/api/v1/tasks").status_code for _ in range(20)} == {200}
    monkeypatch.setenv("CONVEYOR_RATE_LIMIT", "lots")
    with pytest.raises(ConfigError, match="CONVEYOR_RATE_LIMIT='lots'"):
        create_app(backend.engine)


def test_the_limit_is_documented_in_the_openapi_document(backend: Backend) -> None:
    paths = create_app(backend.engine).openapi()["paths"]
    trigger = paths["/api/v1/tasks/{task_id}/trigger"]["post"]["responses"]["429"]
    assert "Retry-After" in trigger["headers"]
    assert "429" not in paths["/api/v1/workers/{worker_id}/lease"]["post"]["responses"]


# -- clients ------------------------------------------------------------------------------


def refusing(times: int, retry_after: str = "0") -> tuple[list[float], httpx.MockTransport]:
    """A server that refuses the first `times` requests with 429, then answers."""
    seen: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) <= times:
            return httpx.Response(
                429,
                headers={"Retry-After": retry_after},
                json={"error": {"code": "rate_limited", "message": "too many requests"}},
            )
        return httpx.Response(200, json={"data": []})

    return seen, httpx.MockTransport(handle)


@contextlib.contextmanager
def refusing_server(times: int, retry_after: str = "0") -> Iterator[tuple[list[float], str]]:
    """A real HTTP server on a free port that refuses the first `times` requests with 429."""
    seen: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(time.monotonic())
            if len(seen) <= times:
                body, status = (
                    b'{"error": {"code": "rate_limited", "message": "too many requests"}}',
                    429,
                )
            else:
                body, status = b'{"data": []}', 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status == 429:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_sends_a_refused_call_again_after_retry_after() -> None:
    with refusing_server(2, retry_after="1") as (seen, url), Client(url, "cv_dev_x") as client:
        assert client.queues.list() == []
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.95 and seen[2] - seen[1] >= 0.95


def test_the_client_gives_up_after_a_few_tries() -> None:
    with (
        refusing_server(100) as (seen, url),
        Client(url, "cv_dev_x") as client,
        pytest.raises(RateLimited, match="too many requests"),
    ):
        client.queues.list()
    assert len(seen) == 4  # the call and three more tries


def test_the_client_does_not_sit_through_a_long_retry_after() -> None:
    with (
        refusing_server(1, retry_after="3600") as (seen, url),
        Client(url, "cv_dev_x") as client,
        pytest.raises(RateLimited),
    ):
        client.queues.list()
    assert len(seen) == 1


def test_the_async_client_sends_a_refused_call_again() -> None:
    seen, transport = refusing(3)

    async def main() -> None:
        async with AsyncClient("http://conveyor.test", "cv_dev_x", transport=transport) as client:
            assert await client.queues.list() == []
        seen_many, many = refusing(100)
        async with AsyncClient("http://conveyor.test", "cv_dev_x", transport=many) as client:
            with pytest.raises(RateLimited):
                await client.queues.list()
        assert len(seen_many) == 4

    asyncio.run(main())
    assert len(seen) == 4


def test_a_client_over_a_real_server_waits_out_the_limit(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("CONVEYOR_RATE_LIMIT", "2,2")
    live_server = request.getfixturevalue("live_server")  # built after the variable is set
    with Client(live_server, backend.key) as client:
        started = time.monotonic()
        handles = [client.trigger("hello", {"n": n}) for n in range(3)]
        assert time.monotonic() - started >= 0.9  # the third waited for its Retry-After of 1 s
    assert len({h.id for h in handles}) == 3
    assert len(backend.engine.runs.list(backend.env.id)[0]) == 3
