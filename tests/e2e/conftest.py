"""End-to-end fixtures: real `conveyor dev`, `conveyor server` and `conveyor worker` processes on a copy of tests/e2e/project.

Tests of what a user does with runs (triggers, waits, tokens, children, hooks, logs, metadata,
cancel, crashes) take `platform` (or `fresh_platform`, for tests that kill or restart it) and run
twice, once on each topology:

- `dev`: `conveyor dev` on its embedded SQLite, with its in-process worker (the laptop);
- `team`: `conveyor server` on a fresh PostgreSQL schema, with two `conveyor worker` processes,
  `left` and `right`, working for it over HTTP with the environment's key (production).

Both handles have the same surface (`api_url`, `secret_key`, `client()`, `start()`, `kill9()`,
`stop()`, `hooks()`, `effects()`, `output()`, `worker_processes()`, `use_executors()`,
`load_changed_code()`), so a test body does not care which one it runs on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil
import pytest

from conveyor import Client
from tests.databases import postgres_schema

PROJECT = Path(__file__).parent / "project"
E2E = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is marked `e2e`, so `pytest -m "not e2e"` leaves them all out
    (a new test file needs no marker of its own)."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProjectFiles:
    """What the tasks of tests/e2e/project write into the project folder, for tests to count."""

    root: Path

    def effects(self) -> list[str]:
        """Lines written by the `effect` side effect of tests/e2e/project/tasks/durable.py."""
        path = self.root / "effects.log"
        return path.read_text().splitlines() if path.exists() else []

    def hooks(self) -> list[str]:
        path = self.root / "hooks.log"
        return path.read_text().splitlines() if path.exists() else []


@dataclass
class DevServer(ProjectFiles):
    """A running `conveyor dev` in its own process group."""

    kind = "dev"
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.log = self.root / "dev.out"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret_key(self) -> str:
        return json.loads((self.root / ".conveyor" / "dev.json").read_text())["secret_key"]

    def start(self, timeout: float = 30) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "dev",
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=self.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor dev exited early:\n{self.output()}")
            try:
                ready = "Loaded tasks" in self.output() or "--no-worker" in self.args
                if httpx.get(f"{self.api_url}/healthz", timeout=0.5).status_code == 200 and ready:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"conveyor dev did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the whole platform at once, as a machine crash would: server, supervisor and
        every executor."""
        assert self.proc is not None
        kill_tree(self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def client(self) -> Client:
        return Client(api_url=self.api_url, secret_key=self.secret_key)

    def worker_processes(self) -> list[psutil.Process]:
        """The processes whose children are the executors running task code."""
        assert self.proc is not None
        return [psutil.Process(self.proc.pid)]

    def use_executors(self, count: int) -> None:
        """Before `start`: run `count` executors per machine preset."""
        self.args = (*self.args, "--executors", str(count))

    def load_changed_code(self) -> None:
        """After a task file changed: `conveyor dev` reloads it by itself."""
        wait_for(lambda: "Reloaded tasks" in self.output(), what="the reload")


class Platform(Protocol):
    """What a worker needs of the server it works for (a DevServer or a ServerProcess)."""

    root: Path

    @property
    def api_url(self) -> str: ...

    @property
    def secret_key(self) -> str: ...


@dataclass
class WorkerProcess:
    """A running `conveyor worker` for a server, in its own process group."""

    dev: Platform
    name: str
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    executors: int = 1
    worker_id: str | None = (
        None  # stable across restarts: a restart gives back what it held at once
    )
    loads: int = 0

    @property
    def log(self) -> Path:
        return self.dev.root / f"worker-{self.name}.out"

    def start(self, timeout: float = 30) -> None:
        self.launch()
        self.wait_loaded(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to load its code (see `wait_loaded`)."""
        self.loads = self.output().count("Loaded tasks")
        out = self.log.open("ab")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CONVEYOR_API_URL": self.dev.api_url,
            "CONVEYOR_SECRET_KEY": self.dev.secret_key,
            **self.env,
        }
        identity = ["--worker-id", self.worker_id] if self.worker_id else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "worker",
                "--name",
                self.name,
                "--executors",
                str(self.executors),
                *identity,
            ],
            cwd=self.dev.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def wait_loaded(self, timeout: float = 30) -> None:
        def loaded() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited early:\n{self.output()}")
            return self.output().count("Loaded tasks") > self.loads

        wait_for(loaded, timeout=timeout, what=f"worker {self.name} to load")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        kill_tree(self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class ServerProcess:
    """A running `conveyor server`; `root` and `secret_key` let a WorkerProcess use it."""

    root: Path
    database_url: str
    port: int = field(default_factory=free_port)
    name: str = "server"
    secret_key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    worker_timeout: float = 10

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}-{self.starts}.out"

    def start(self, timeout: float = 30) -> str:
        """Start it; its output up to the "Press Ctrl-C" line."""
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVEYOR_DATABASE_URL": self.database_url}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "server",
                "--port",
                str(self.port),
                "--worker-timeout",
                str(self.worker_timeout),
            ],
            cwd=self.root,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor server exited early:\n{self.output()}")
            try:
                if (
                    httpx.get(f"{self.api_url}/healthz", timeout=0.5).status_code == 200
                    and "Ctrl-C" in self.output()
                ):
                    return self.output()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"conveyor server did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def kill_tree(*procs: subprocess.Popen[bytes]) -> None:
    """SIGKILL processes and every process under them at once, as a machine crash would."""
    processes: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes += [
                psutil.Process(proc.pid),
                *psutil.Process(proc.pid).children(recursive=True),
            ]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait(10)
    psutil.wait_procs(processes, timeout=10)


ADMIN_TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


@dataclass
class TeamPlatform(ProjectFiles):
    """The production topology: a `conveyor server` on PostgreSQL and two `conveyor worker`
    processes, `left` and `right`, in the project folder, leasing over HTTP with the key of the
    project's prod environment (made through the API with the admin token the first start prints).
    Each worker keeps its id across restarts, as a worker under a service manager does."""

    kind = "team"
    root: Path
    database_url: str
    worker_timeout: float = 10
    secret_key: str = ""
    server: ServerProcess = field(init=False)
    workers: list[WorkerProcess] = field(init=False)

    def __post_init__(self) -> None:
        self.server = ServerProcess(
            root=self.root, database_url=self.database_url, worker_timeout=self.worker_timeout
        )
        suffix = secrets.token_hex(4)
        self.workers = [
            WorkerProcess(self, name, worker_id=f"wrk_{name}_{suffix}", executors=2)
            for name in ("left", "right")
        ]

    @property
    def api_url(self) -> str:
        return self.server.api_url

    def start(self, timeout: float = 30) -> None:
        printed = self.server.start(timeout)
        if not self.secret_key:
            with Client(self.api_url, ADMIN_TOKEN.findall(printed)[0]) as admin:
                admin.projects.create("E2E")
                self.secret_key = admin.projects.key("e2e", "prod").secret_key
            self.server.secret_key = self.secret_key
        for worker in self.workers:
            worker.launch()
        for worker in self.workers:
            worker.wait_loaded(timeout)

    def client(self) -> Client:
        return Client(api_url=self.api_url, secret_key=self.secret_key)

    def worker(self, name: str) -> WorkerProcess:
        return next(w for w in self.workers if w.name == name)

    def worker_processes(self) -> list[psutil.Process]:
        return [
            psutil.Process(w.proc.pid)
            for w in self.workers
            if w.proc is not None and w.proc.poll() is None
        ]

    def use_executors(self, count: int) -> None:
        """Before `start`: run `count` executors per machine preset on each worker."""
        for worker in self.workers:
            worker.executors = count

    def load_changed_code(self) -> None:
        """After a task file changed: the workers are restarted with the new code."""
        for worker in self.workers:
            worker.stop()
            worker.start()

    def output(self) -> str:
        return "\n".join([self.server.output(), *(w.output() for w in self.workers)])

    def kill9(self) -> None:
        """SIGKILL the server, the workers and their executors at once."""
        kill_tree(
            *(
                p.proc
                for p in [self.server, *self.workers]
                if p.proc is not None and p.proc.poll() is None
            )
        )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()


TOPOLOGIES = ["dev", "team"]


@contextlib.contextmanager
def topology(kind: str, root: Path) -> Iterator[DevServer | TeamPlatform]:
    """A platform of `kind` over the project at `root`, not started; stopped afterwards."""
    if kind == "dev":
        dev = DevServer(root, free_port())
        try:
            yield dev
        finally:
            dev.stop()
        return
    with postgres_schema() as url:
        team = TeamPlatform(root, url)
        try:
            yield team
        finally:
            team.stop()


def executor_pids(platform: DevServer | TeamPlatform) -> set[int]:
    """The processes under the platform's workers: its executors."""
    return {
        child.pid
        for process in platform.worker_processes()
        for child in process.children(recursive=True)
    }


def peak_overlap(runs) -> int:
    """The most runs executing at once, from their start and end times."""
    edges = sorted(
        [(r.started_at.timestamp(), 1) for r in runs]
        + [(r.completed_at.timestamp(), -1) for r in runs]
    )
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def make_project(tmp: Path) -> Path:
    root = tmp / "project"
    shutil.copytree(
        PROJECT,
        root,
        ignore=shutil.ignore_patterns(
            ".conveyor", "__pycache__", "hooks.log", "effects.log", "dev.out"
        ),
    )
    return root


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(make_project(tmp_path_factory.mktemp("e2e")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_dev(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server of its own, for tests that kill or restart it."""
    server = DevServer(make_project(tmp_path), free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def team_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamPlatform]:
    """One team topology for the cheap tests of every module: starting one takes seconds."""
    with topology("team", make_project(tmp_path_factory.mktemp("e2e-team"))) as team:
        assert isinstance(team, TeamPlatform)
        team.start()
        yield team


@pytest.fixture(scope="module", params=TOPOLOGIES)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer | TeamPlatform]:
    """A started platform of each topology: a `conveyor dev` of the module's own, or the
    session's team topology."""
    if request.param == "team":
        yield request.getfixturevalue("team_platform")
        return
    with topology("dev", make_project(tmp_path_factory.mktemp("e2e-dev"))) as dev:
        dev.start()
        yield dev


@pytest.fixture(scope="module")
def client(platform: DevServer | TeamPlatform) -> Iterator[Client]:
    with platform.client() as c:
        yield c


@pytest.fixture(params=TOPOLOGIES)
def fresh_platform(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[DevServer | TeamPlatform]:
    """A platform of each topology of its own, not started, for tests that kill or restart it."""
    with topology(request.param, make_project(tmp_path)) as platform:
        yield platform


def wait_for(predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
