"""Deploys end to end: a real `conveyor server`, `conveyor deploy` and `conveyor worker --env prod`.

A run that waits finishes on the version it started on while new runs use the new version; a
child it waits for runs on its version too; promoting the old version back serves new runs
from it; a run of a task no version defines waits in PENDING_VERSION and runs after the deploy
that defines it; a deploy whose code fails to import leaves the current version serving; and a
task over micro's memory ends out of memory and succeeds on the larger machine it asks for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Client
from tests.e2e.conftest import ServerProcess, wait_for

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")

CODE = """
import asyncio
import time

from conveyor import task, wait

CODE = "{code}"


@task(id="greet")
async def greet(payload):
    return {{"code": CODE}}


@task(id="echo")
async def echo(payload):
    return {{"code": CODE}}


@task(id="waiter")
async def waiter(payload, ctx):
    await wait.for_(seconds=6)
    child = await echo.trigger_and_wait({{}})
    return {{"code": CODE, "child": child.output}}


@task(
    id="hog",
    machine="micro",
    retry={{"max_attempts": 1, "out_of_memory": {{"machine": "small-2x"}}}},
)
def hog(payload, ctx):
    data = bytearray(350 * 1024 * 1024)
    time.sleep(2)
    return {{"machine": ctx.machine, "mb": len(data) // 1024**2}}
{extra}
"""

LATER = """

@task(id="later")
async def later(payload):
    return {"code": CODE, "later": True}
"""


class Deployment:
    """A project folder that deploys to the prod environment of a server, and its worker."""

    def __init__(self, server: ServerProcess, root: Path, key: str, project: str) -> None:
        self.server, self.root, self.key, self.project = server, root, key, project
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = root.parent / "worker.out"
        (root / "tasks").mkdir(parents=True)
        (root / "conveyor.toml").write_text(f'project = "{project}"\ndirs = ["tasks"]\n')
        (root / "tasks" / "__init__.py").write_text("")

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CONVEYOR_API_URL": self.server.api_url,
            "CONVEYOR_SECRET_KEY": self.key,
            "CONVEYOR_WORKER_CACHE": str(self.root.parent / "cache"),
        }

    def write(self, code: str, extra: str = "") -> None:
        (self.root / "tasks" / "app.py").write_text(CODE.format(code=code, extra=extra))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"conveyor {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def deploy(self) -> str:
        out = self.cli("deploy", "--env", "prod").stdout
        match = re.search(r"(\d{8}\.\d+) is current", out)
        assert match, out
        return match.group(1)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "worker",
                "--env",
                "prod",
                "--executors",
                "1",
                "--name",
                "deployed",
            ],
            cwd=self.root.parent,
            env=self.env,
            stdout=self.worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker_output(self) -> str:
        return self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, 15)
            try:
                self.worker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, 9)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    server = ServerProcess(tmp_path, str(tmp_path / "conveyor.db"))
    output = server.start()
    try:
        token = TOKEN.search(output)
        assert token, output
        with Client(server.api_url, token.group(0)) as admin:
            project = admin.projects.create("Shop")
            key = admin.projects.key(project.id, "prod").secret_key
        made = Deployment(server, tmp_path / "shop", key, project.id)
        yield made
        made.stop()
    finally:
        server.stop()


def test_runs_keep_their_version_across_deploys_and_promotes(deployment: Deployment) -> None:
    d = deployment
    d.write("v1")
    v1 = d.deploy()
    d.start_worker()
    wait_for(
        lambda: f"tasks of version {v1}" in d.worker_output(),
        timeout=60,
        what="the worker to load v1",
    )
    with Client(d.server.api_url, d.key) as client:
        assert client.runs.poll(client.trigger("greet", {}).id, timeout=30).output == {"code": "v1"}
        waiting = client.trigger("waiter", {})
        wait_for(
            lambda: client.runs.retrieve(waiting.id).status == "WAITING",
            timeout=30,
            what="the run to wait",
        )
        later = client.trigger("later", {})  # no version defines it yet
        assert client.runs.retrieve(later.id).status == "PENDING_VERSION"

        d.write("v2", extra=LATER)
        v2 = d.deploy()
        assert v2 != v1
        assert client.runs.poll(later.id, timeout=30).output == {"code": "v2", "later": True}
        fresh = client.runs.poll(client.trigger("greet", {}).id, timeout=30)
        assert (fresh.output, fresh.version) == ({"code": "v2"}, v2)
        waited = client.runs.poll(waiting.id, timeout=60)
        assert waited.status == "COMPLETED", waited.error
        # it resumed on its version, and the child it waited for ran on that version too
        assert waited.output == {"code": "v1", "child": {"code": "v1"}} and waited.version == v1

        d.cli("promote", v1, "--env", "prod")
        assert client.deployments.current().version == v1
        back = client.runs.poll(client.trigger("greet", {}).id, timeout=30)
        assert (back.output, back.version) == ({"code": "v1"}, v1)
        listed = d.cli("deploys", "list", "--env", "prod").stdout
        assert f"* {v1}" in listed and v2 in listed
        # v1 does not define "later": a run of it waits again, visibly, until a version does
        again = client.trigger("later", {})
        assert client.runs.retrieve(again.id).status == "PENDING_VERSION"


def test_a_deploy_that_fails_to_import_leaves_the_current_version_serving(
    deployment: Deployment,
) -> None:
    d = deployment
    d.write("v1")
    v1 = d.deploy()
    (d.root / "tasks" / "broken.py").write_text("import not_a_module_anywhere\n")
    failed = d.cli("deploy", "--env", "prod", check=False)
    assert failed.returncode == 1
    assert (
        "cannot import tasks/broken.py" in failed.stderr
        and "not_a_module_anywhere" in failed.stderr
    )
    assert failed.stderr.count("\n") == 1  # one error line, no traceback
    dry = d.cli("deploy", "--env", "prod", "--dry-run", check=False)
    assert dry.returncode == 1
    with Client(d.server.api_url, d.key) as client:
        assert client.deployments.current().version == v1
        assert [v.version for v in client.deployments.list()] == [v1]


def test_a_task_out_of_memory_on_micro_succeeds_on_the_larger_machine(
    deployment: Deployment,
) -> None:
    d = deployment
    d.write("v1")
    v1 = d.deploy()
    d.start_worker()
    wait_for(
        lambda: f"tasks of version {v1}" in d.worker_output(),
        timeout=60,
        what="the worker to load v1",
    )
    with Client(d.server.api_url, d.key) as client:
        run = client.runs.poll(client.trigger("hog", {}).id, timeout=60)
        assert run.status == "COMPLETED", run.error
        assert run.output == {"machine": "small-2x", "mb": 350} and run.machine == "small-2x"
        first = run.attempt_list[0]
        assert (
            first.status == "CRASHED"
            and first.error.code == "out_of_memory"
            and "micro" in first.error.message
        )
