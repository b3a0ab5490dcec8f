"""Real platforms in subprocesses, for end-to-end tests: start one in a folder, talk to it with
its URL and key, stop it.

    with DevPlatform(project_dir) as platform:        # `conveyor dev`: SQLite in .conveyor/
        with platform.client() as client:
            client.trigger("hello", {})

- `DevPlatform`: `conveyor dev` (server and worker in one process group) on the folder's SQLite.
- `ServerProcess` and `WorkerProcess`: a `conveyor server` on a database URL, and `conveyor worker`
  processes working for any platform over HTTP with its key.
- `TeamPlatform`: the production shape, a server and two workers with a project's prod key.

Each process runs in its own process group with its output in a file under the folder, so a
test can read what it printed (`output()`), stop it (SIGTERM, then SIGKILL) or crash it with its
executors (`kill9()`). Nothing here imports the engine: only processes, HTTP and the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from conveyor.client import Client

if TYPE_CHECKING:
    import psutil

T = TypeVar("T")


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], T], timeout: float = 20, interval: float = 0.1, what: str = "condition"
) -> T:
    """The first true value of `predicate`, asked every `interval` seconds; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the test extra
        raise RuntimeError("crashing a platform needs psutil: pip install psutil") from None
    return psutil


def kill_tree(*procs: subprocess.Popen[bytes]) -> None:
    """SIGKILL processes and every process under them at once, as a machine crash would
    (executors run in sessions of their own, so a process group is not enough)."""
    ps = _psutil()
    processes: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(ps.NoSuchProcess):
            processes += [ps.Process(proc.pid), *ps.Process(proc.pid).children(recursive=True)]
    for process in processes:
        with contextlib.suppress(ps.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait(10)
    ps.wait_procs(processes, timeout=10)


def _conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor.cli.main", *args]


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the process group, SIGKILL if it has not exited 15 seconds later."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class DevPlatform:
    """A running `conveyor dev` on the project in `root` (its SQLite under `root/.conveyor`).

    `env` is the whole environment of the process (this process's by default); `args` are more
    options of `conveyor dev` (`--no-worker`, `--worker-timeout 3`). Its output goes to
    `root/dev.out`, kept across restarts."""

    kind = "dev"
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        self.log = self.root / "dev.out"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret_key(self) -> str:
        """The dev environment's key, from the `.conveyor/dev.json` the platform wrote."""
        return str(json.loads((self.root / ".conveyor" / "dev.json").read_text())["secret_key"])

    def start(self, timeout: float = 60) -> None:
        """Start it and return once it answers and its worker has loaded the tasks."""
        self.proc = subprocess.Popen(
            _conveyor("dev", "--port", str(self.port), *self.args),
            cwd=self.root,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor dev exited early:\n{self.output()}")
            ready = "Loaded tasks" in self.output() or "--no-worker" in self.args
            if ready and _healthy(self.api_url):
                return
            time.sleep(0.1)
        raise RuntimeError(f"conveyor dev did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the whole platform at once, as a machine crash would: server, supervisor and
        every executor."""
        assert self.proc is not None
        kill_tree(self.proc)

    def stop(self) -> None:
        _stop(self.proc)

    def client(self) -> Client:
        return Client(api_url=self.api_url, secret_key=self.secret_key)

    def worker_processes(self) -> list[psutil.Process]:
        """The processes whose children are the executors running task code."""
        assert self.proc is not None
        return [_psutil().Process(self.proc.pid)]

    def use_executors(self, count: int) -> None:
        """Before `start`: run `count` executors per machine preset."""
        self.args = (*self.args, "--executors", str(count))

    def load_changed_code(self) -> None:
        """After a task file changed: `conveyor dev` reloads it by itself."""
        wait_for(lambda: "Reloaded tasks" in self.output(), what="the reload")

    def __enter__(self) -> DevPlatform:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Served(Protocol):
    """What a worker needs of the platform it works for (a DevPlatform or a ServerProcess)."""

    root: Path

    @property
    def api_url(self) -> str: ...

    @property
    def secret_key(self) -> str: ...


@dataclass
class WorkerProcess:
    """A running `conveyor worker` for `platform`, in the platform's folder; `env` is added to
    this process's environment."""

    platform: Served
    name: str
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    executors: int = 1
    worker_id: str | None = None  # stable across restarts: a restart gives back what it held
    loads: int = 0
    capacity: int | None = None  # `--capacity`: attempts at once (None: the worker's default)

    @property
    def log(self) -> Path:
        return self.platform.root / f"worker-{self.name}.out"

    def start(self, timeout: float = 30) -> None:
        self.launch()
        self.wait_loaded(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to load its code (see `wait_loaded`)."""
        self.loads = self.output().count("Loaded tasks")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CONVEYOR_API_URL": self.platform.api_url,
            "CONVEYOR_SECRET_KEY": self.platform.secret_key,
            **self.env,
        }
        options = ["--worker-id", self.worker_id] if self.worker_id else []
        if self.capacity is not None:
            options += ["--capacity", str(self.capacity)]
        self.proc = subprocess.Popen(
            _conveyor("worker", "--name", self.name, "--executors", str(self.executors), *options),
            cwd=self.platform.root,
            stdout=self.log.open("ab"),
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
        _stop(self.proc)


@dataclass
class ServerProcess:
    """A running `conveyor server` on `database_url` (`sqlite:///...` or `postgresql://...`),
    started in `root`. It has no key of its own: `secret_key` is set by whoever made one (see
    `TeamPlatform`), so that a WorkerProcess can use it."""

    root: Path
    database_url: str
    port: int = field(default_factory=free_port)
    name: str = "server"
    secret_key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    worker_timeout: float = 10
    host: str = "127.0.0.1"  # the address it listens on

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}-{self.starts}.out"

    def start(self, timeout: float = 30) -> str:
        """Start it; its output up to the "Press Ctrl-C" line (the first start prints the admin's
        access token there)."""
        self.starts += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVEYOR_DATABASE_URL": self.database_url}
        self.proc = subprocess.Popen(
            _conveyor(
                "server",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--worker-timeout",
                str(self.worker_timeout),
            ),
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
            if "Ctrl-C" in self.output() and _healthy(self.api_url):
                return self.output()
            time.sleep(0.1)
        raise RuntimeError(f"conveyor server did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        _stop(self.proc)


ADMIN_TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


@dataclass
class TeamPlatform:
    """The production shape: a `conveyor server` on `database_url` and two `conveyor worker`
    processes, `left` and `right`, in the project folder, leasing over HTTP with the prod key of
    a project (`project`, made through the API with the admin token the first start prints).
    Each worker keeps its id across restarts, as a worker under a service manager does."""

    kind = "team"
    root: Path
    database_url: str
    worker_timeout: float = 10
    project: str = "Tests"
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
                project = admin.projects.create(self.project)
                self.secret_key = admin.projects.key(project.slug, "prod").secret_key
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
        ps = _psutil()
        return [
            ps.Process(w.proc.pid)
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
        processes: list[ServerProcess | WorkerProcess] = [self.server, *self.workers]
        kill_tree(*(p.proc for p in processes if p.proc is not None and p.proc.poll() is None))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()

    def __enter__(self) -> TeamPlatform:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
