"""Fixtures for the HTTP API and client tests: a real SQLite store in tmp_path, an engine with
a keyed environment and registered tasks, the app in-process (TestClient), and the app behind
a real uvicorn server on a free port (for Client and AsyncClient)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import BaseModel

from conveyor.engine import Engine, Environment
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition
from conveyor.protocol import AttemptOutcome, OutcomeKind
from conveyor.server import create_app
from conveyor.store import Store, open_store
from tests.databases import database_url

KEY = "cv_dev_" + "k" * 32
OTHER_KEY = "cv_dev_" + "o" * 32


class Video(BaseModel):
    video_url: str
    format: Literal["mp4", "webm"] = "mp4"


class Clock:
    """The engine's clock: real time, but strictly increasing by at least 2 ms per reading, so
    runs made one after another get ids (and created_at) in creation order; `advance` jumps."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.last = max(time.time() + self.offset, self.last + 0.002)
            return self.last

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds


def task_definitions() -> list[TaskDefinition]:
    retry = RetryPolicy(max_attempts=1)
    return [
        TaskDefinition(id="hello", queue=QueueSpec(name="task/hello"), retry=retry),
        TaskDefinition(id="other", queue=QueueSpec(name="task/other"), retry=retry),
        TaskDefinition(
            id="encode", queue=QueueSpec(name="media/encode", concurrency_limit=2), retry=retry
        ),
        TaskDefinition(
            id="process-video",
            queue=QueueSpec(name="task/process-video"),
            retry=retry,
            payload_schema=Video.model_json_schema(),
        ),
    ]


@dataclass
class Backend:
    """A real engine over a real SQLite file, with one environment keyed by KEY."""

    store: Store
    engine: Engine
    env: Environment
    clock: Clock
    key: str = KEY

    def other_environment(self) -> str:
        """A second environment of the same project; returns its key."""
        other = self.engine.environments.ensure("proj_test", "staging", "staging")
        self.engine.environments.add_api_key(other.id, OTHER_KEY)
        return OTHER_KEY


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test that uses the backend runs on SQLite and on PostgreSQL."""
    with database_url(request.param, tmp_path) as url:
        yield url


class ManualClock:
    """An engine clock that stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15 08:00 UTC

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    """A bare engine on a fresh database (both kinds), on the manual clock; workers time out after
    10 s."""
    store = open_store(database)
    store.migrate()
    yield Engine(store, clock=clock, worker_timeout=10)
    store.close()


@pytest.fixture
def backend(database: str) -> Iterator[Backend]:
    store = open_store(database)
    store.migrate()
    clock = Clock()
    engine = Engine(store, clock=clock)
    env = engine.environments.ensure("proj_test", "dev", "dev")
    engine.environments.add_api_key(env.id, KEY)
    engine.workers.register(env.id, "worker-1", "worker-1", task_definitions())
    yield Backend(store, engine, env, clock)
    store.close()


@pytest.fixture
def api(backend: Backend) -> Iterator[TestClient]:
    """The app in-process, authenticated. Server exceptions are raised, so a 500 fails loudly."""
    with TestClient(
        create_app(backend.engine), headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` behind a real uvicorn server on a free port; yields its base URL."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
    # and without it every keep-alive request waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def live_server(backend: Backend) -> Iterator[str]:
    """The app behind a real uvicorn server on a free port; yields its base URL."""
    with serving(create_app(backend.engine)) as url:
        yield url


@pytest.fixture
def platform(
    backend: Backend, live_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Backend:
    """`backend` behind a live server, reached through its key by the MCP server and the CLI
    made in the test (CONVEYOR_API_URL, CONVEYOR_SECRET_KEY, a config folder of its own)."""
    monkeypatch.setenv("CONVEYOR_API_URL", live_server)
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return backend


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (pytest.mark.anyio) run on asyncio."""
    return "asyncio"


@pytest.fixture
def free_url() -> str:
    """A URL where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test cannot pick up a developer's CONVEYOR_* variables or a .conveyor/dev.json above."""
    monkeypatch.delenv("CONVEYOR_API_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


# -- speaking for the attempt that holds a run ----------------------------------------------
# Tests that drive the engine directly act as the worker holding a leased run: what they report
# carries that attempt's fence (conveyor/protocol.py), read here from the run itself.


def current_fence(engine: Engine, run_id: str) -> int:
    with engine.store.read() as tx:
        row = tx.one("get_run_by_id", id=run_id)
    assert row is not None, run_id
    return int(row["fence"])


def holder(engine: Engine, run_id: str) -> dict[str, Any]:
    """`worker_id` and `fence` of the attempt executing `run_id`, for `engine.durable.call`."""
    with engine.store.read() as tx:
        row = tx.one("get_run_by_id", id=run_id)
    assert row is not None, run_id
    return {"worker_id": row["worker_id"], "fence": int(row["fence"])}


def held(
    engine: Engine, run_id: str, attempt: int, kind: OutcomeKind, **fields: Any
) -> AttemptOutcome:
    """The outcome of the attempt holding `run_id` now."""
    return AttemptOutcome(run_id, attempt, kind, fence=current_fence(engine, run_id), **fields)
