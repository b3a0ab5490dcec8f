"""End-to-end fixtures: real `conveyor dev`, `conveyor server` and `conveyor worker` processes on
a copy of tests/e2e/project.

Tests of what a user does with runs (triggers, waits, tokens, children, hooks, logs, metadata,
cancel, crashes) take `platform` (or `fresh_platform`, for tests that kill or restart it) and run
twice, once on each topology:

- `dev`: `conveyor dev` on its embedded SQLite, with its in-process worker (the laptop);
- `team`: `conveyor server` on a fresh PostgreSQL schema, with two `conveyor worker` processes,
  `left` and `right`, working for it over HTTP with the environment's key (production).

Both handles have the same surface (`api_url`, `secret_key`, `client()`, `start()`, `kill9()`,
`stop()`, `hooks()`, `effects()`, `output()`, `worker_processes()`, `use_executors()`,
`load_changed_code()`), so a test body does not care which one it runs on. The processes are
those of `conveyor.testing.platform`; this file adds the project's files and the fixtures.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.testing import platform as processes
from conveyor.testing.platform import (
    ServerProcess,
    WorkerProcess,
    free_port,
    kill_tree,
    wait_for,
)
from tests.databases import postgres_schema

__all__ = [
    "TOKEN",
    "DevServer",
    "ServerProcess",
    "Shop",
    "TeamPlatform",
    "WorkerProcess",
    "executor_pids",
    "free_port",
    "kill_tree",
    "make_project",
    "peak_overlap",
    "wait_for",
]

PROJECT = Path(__file__).parent / "project"
# the admin's personal access token, as `conveyor server` prints it at its first start
TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")
E2E = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is marked `e2e`, so `pytest -m "not e2e"` leaves them all out
    (a new test file needs no marker of its own). When the suite runs in parallel
    (`--dist loadgroup`), a module's tests stay in one process, which starts its platforms once."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


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


class DevServer(ProjectFiles, processes.DevPlatform):
    """A running `conveyor dev` on a copy of tests/e2e/project."""


class TeamPlatform(ProjectFiles, processes.TeamPlatform):
    """The team topology on a copy of tests/e2e/project: a server on PostgreSQL and two workers
    with the prod key of the project E2E."""


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
        team = TeamPlatform(root, url, project="E2E")
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


@dataclass
class Shop:
    """A project folder beside a real `conveyor server` on SQLite, with the key of its project's
    prod and the admin's personal access token."""

    server: ServerProcess
    root: Path
    prod_key: str
    token: str


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """A `conveyor server`, its admin's project "Shop" and an empty project folder (tasks/)."""
    server = ServerProcess(tmp_path, str(tmp_path / "conveyor.db"))
    output = server.start()
    try:
        token = TOKEN.search(output)
        assert token, output
        with Client(server.api_url, token.group(0)) as admin:
            project = admin.projects.create("Shop")
            key = admin.projects.key(project.id, "prod").secret_key
        root = tmp_path / "shop"
        (root / "tasks").mkdir(parents=True)
        (root / "conveyor.toml").write_text(f'project = "{project.id}"\ndirs = ["tasks"]\n')
        (root / "tasks" / "__init__.py").write_text("")
        yield Shop(server, root, key, token.group(0))
    finally:
        server.stop()
