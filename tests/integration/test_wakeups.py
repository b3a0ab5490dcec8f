"""No wake-up is lost: a worker long-polling for runs gets a run triggered at any moment around
its lease at once, never after the poll's length; through another server on the same
PostgreSQL, and after the server's notification connection was lost."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from conveyor.engine import Engine
from conveyor.server import create_app
from conveyor.store import open_store
from conveyor.store.postgres import PostgresStore
from tests.databases import POSTGRES_URL, postgres_schema
from tests.integration.conftest import KEY, Backend, serving

POLL = 10.0  # the long poll's length: a lost wake-up shows as a lease this long
PROMPT = 4.0  # a bound for a woken start (typically a few ms) that a busy machine still keeps


def lease(http: httpx.Client, wait: float = POLL) -> tuple[float, list[dict[str, object]]]:
    started = time.monotonic()
    reply = http.post("/api/v1/workers/worker-1/lease", json={"capacity": 1, "wait": wait})
    assert reply.status_code == 200, reply.text
    return time.monotonic() - started, reply.json()["attempts"]


def trigger_around_leases(
    http: httpx.Client, trigger: Callable[[], object], iterations: int
) -> None:
    """Trigger one run at a random moment around each long poll (before, during and after its
    first read); each lease must hand the run out promptly."""
    read = min(lease(http, wait=0)[0] for _ in range(5))  # how long one lease takes here, warm
    for _ in range(iterations):
        delay = random.uniform(0, 3 * read)
        timer = threading.Timer(delay, trigger)
        timer.start()
        took, attempts = lease(http)
        timer.join()
        assert len(attempts) == 1, (
            f"the run triggered {delay * 1000:.1f} ms into the lease was not handed out"
        )
        assert took < delay + PROMPT, (
            f"a start took {took:.2f}s, for a trigger {delay * 1000:.1f} ms into the lease"
        )


@pytest.fixture
def http(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as client:
        yield client


def test_a_run_triggered_at_any_moment_around_a_long_poll_starts_at_once(
    backend: Backend, http: httpx.Client
) -> None:
    trigger_around_leases(
        http, lambda: backend.engine.tasks.trigger(backend.env.id, "hello", {}), iterations=100
    )


@pytest.fixture
def second_server(backend: Backend) -> Iterator[tuple[Engine, httpx.Client]]:
    """Another server (its own engine and store) on the backend's PostgreSQL database."""
    if backend.store.dialect != "postgres":
        pytest.skip("servers share one database on PostgreSQL")
    assert isinstance(backend.store, PostgresStore)
    store = open_store(backend.store.url)
    engine = Engine(store)
    try:
        with (
            serving(create_app(engine)) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
            ) as client,
        ):
            yield engine, client
    finally:
        store.close()


def test_a_run_triggered_through_another_server_wakes_a_long_poll_at_once(
    backend: Backend, second_server: tuple[Engine, httpx.Client]
) -> None:
    _, http = second_server
    trigger_around_leases(
        http, lambda: backend.engine.tasks.trigger(backend.env.id, "hello", {}), iterations=50
    )


def test_a_long_poll_wakes_after_its_server_lost_the_notification_connection(
    backend: Backend, second_server: tuple[Engine, httpx.Client]
) -> None:
    engine, http = second_server
    store = engine.store
    assert isinstance(store, PostgresStore) and store._listener is not None
    deadline = time.monotonic() + 10
    while (listening := store._listener._conn) is None:
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.05)
    answer: list[tuple[float, list[dict[str, object]]]] = []
    polling = threading.Thread(target=lambda: answer.append(lease(http, wait=30)))
    polling.start()
    time.sleep(0.5)  # the poll waits
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:  # the listening connection dies
        admin.execute("SELECT pg_terminate_backend(%s)", (listening.info.backend_pid,))
    triggered = time.monotonic()
    backend.engine.tasks.trigger(backend.env.id, "hello", {})  # its notification finds no listener
    polling.join(timeout=40)
    ((_, attempts),) = answer
    assert len(attempts) == 1
    assert time.monotonic() - triggered < 5, "the poll was not woken after the connection came back"


def test_a_notification_that_could_not_be_sent_is_sent_again() -> None:
    with postgres_schema() as url:
        sender, receiver = PostgresStore(url), PostgresStore(url)
        heard: list[str] = []
        try:
            receiver.listen(heard.append)
            deadline = time.monotonic() + 10
            while "" not in heard:  # listening
                assert time.monotonic() < deadline
                time.sleep(0.02)
            sender.check()  # its connection, idle a moment (not checked again before use) ...
            ((conn, _),) = sender._pool._idle
            with psycopg.connect(
                POSTGRES_URL, autocommit=True
            ) as admin:  # ... is dropped by the database
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            message = f"test {secrets.token_hex(8)}"
            sender.publish(message)  # its first send fails
            while message not in heard:
                assert time.monotonic() < deadline, "the notification was lost"
                time.sleep(0.02)
        finally:
            sender.close()
            receiver.close()
