"""A worker that stops gracefully (Ctrl-C, SIGTERM) stops its executors before it tells the engine
the runs it held are free: told first, the engine could hand a run to another worker while the
first body still executes, and the run would execute twice at the same time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil

from conveyor.engine import Engine
from conveyor.platform.link import LocalLink
from conveyor.store import open_store
from conveyor.worker.supervisor import Supervisor

TASK = """
import os, time
from pathlib import Path
from conveyor import task

@task(id="slow")
async def slow(payload, ctx):
    Path(payload["pid_file"]).write_text(str(os.getpid()))
    time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class WatchingLink(LocalLink):
    """The in-process link, noting whether the body's process was still alive when the worker
    said it stopped."""

    pid_file: Path
    body_alive_when_released: list[bool]

    async def stopped(self, worker_id: str) -> None:
        self.body_alive_when_released.append(alive(int(self.pid_file.read_text())))
        await super().stopped(worker_id)


def test_a_stopping_worker_kills_its_executors_before_it_frees_their_runs(tmp_path: Path) -> None:
    asyncio.run(stop_while_a_body_runs(tmp_path))


async def stop_while_a_body_runs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.conveyor]\nproject = "proj_stop"\ndirs = ["tasks"]\n'
    )
    (project / "tasks" / "slow.py").write_text(TASK)
    pid_file = tmp_path / "body.pid"
    store = open_store(str(tmp_path / "conveyor.db"))
    store.migrate()
    engine = Engine(store, worker_timeout=10)
    env = engine.environments.ensure("proj_stop", "dev", "dev")
    link = WatchingLink(engine, env.id)
    link.pid_file, link.body_alive_when_released = pid_file, []
    supervisor = Supervisor(
        link, root=project, worker_id="wrk_stop", executors=1, heartbeat_interval=1.0
    )
    try:
        assert await supervisor.load()
        engine.tasks.trigger(env.id, "slow", {"pid_file": str(pid_file)})
        runner = asyncio.create_task(supervisor.run())
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the body never started"
            await asyncio.sleep(0.05)
        await supervisor.stop(grace=0)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert link.body_alive_when_released == [False]
    finally:
        for proc in supervisor.all_processes():
            proc.kill("test over")
        store.close()
