"""End-to-end fixtures: real `conveyor dev`, `conveyor server` and `conveyor worker` processes on a copy of tests/e2e/project."""

from __future__ import annotations

import json
import os
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
import pytest

from conveyor import Client

PROJECT = Path(__file__).parent / "project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DevServer:
    """A running `conveyor dev` in its own process group."""

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
            [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(self.port), *self.args],
            cwd=self.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
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

    def effects(self) -> list[str]:
        """Lines written by the `effect` side effect of tests/e2e/project/tasks/durable.py."""
        path = self.root / "effects.log"
        return path.read_text().splitlines() if path.exists() else []

    def hooks(self) -> list[str]:
        path = self.root / "hooks.log"
        return path.read_text().splitlines() if path.exists() else []


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

    @property
    def log(self) -> Path:
        return self.dev.root / f"worker-{self.name}.out"

    def start(self, timeout: float = 30) -> None:
        out = self.log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVEYOR_API_URL": self.dev.api_url,
               "CONVEYOR_SECRET_KEY": self.dev.secret_key, **self.env}
        self.proc = subprocess.Popen([sys.executable, "-m", "conveyor.cli.main", "worker", "--name", self.name,
                                      "--executors", str(self.executors)],
                                     cwd=self.dev.root, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        wait_for(lambda: "Loaded tasks" in self.output(), timeout=timeout, what=f"worker {self.name} to load")

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
            [sys.executable, "-m", "conveyor.cli.main", "server", "--port", str(self.port), "--worker-timeout", "10"],
            cwd=self.root, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor server exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=0.5).status_code == 200 and "Ctrl-C" in self.output():
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


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and every process under it at once, as a machine crash would."""
    import psutil

    processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait(10)
    psutil.wait_procs(processes, timeout=10)


def peak_overlap(runs) -> int:
    """The most runs executing at once, from their start and end times."""
    edges = sorted([(r.started_at.timestamp(), 1) for r in runs] + [(r.completed_at.timestamp(), -1) for r in runs])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def make_project(tmp: Path) -> Path:
    root = tmp / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(".conveyor", "__pycache__", "hooks.log", "effects.log", "dev.out"))
    return root


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(make_project(tmp_path_factory.mktemp("e2e")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    with dev.client() as c:
        yield c


@pytest.fixture
def fresh_dev(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server of its own, for tests that kill or restart it."""
    server = DevServer(make_project(tmp_path), free_port())
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
