"""An attempt that blocks its executor's event loop past `stall_timeout` (a `time.sleep` in an
`async def`) is found by the executor's watchdog: its run's logs get an error line with the
blocking code's stack, its executor is replaced, the attempt fails (and is retried per its
policy), and the attempts that shared the executor run again without using up a retry.

A real worker (supervisor and executor processes) on the in-process engine and SQLite."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conveyor.engine import Engine
from conveyor.platform.link import LocalLink
from conveyor.store import open_store
from conveyor.worker import decisions
from conveyor.worker.supervisor import Supervisor

TASKS = """
import asyncio, os, time
from pathlib import Path
from conveyor import task

@task(id="blocker", retry={"max_attempts": 2, "min_timeout_ms": 10, "max_timeout_ms": 10})
async def blocker(payload, ctx):
    if ctx.attempt.number == 1:
        time.sleep(60)  # holds the event loop of every attempt of the process
    return "recovered"

@task(id="neighbour", retry={"max_attempts": 1})
async def neighbour(payload, ctx):
    with open(payload["pids"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    await asyncio.sleep(payload["seconds"])
    return "done"
"""


def test_decisions_fail_the_staller_and_interrupt_the_others() -> None:
    own = decisions.exit_outcome("run_a", 1, None, "stalled:run_a", -9, "File x, line 3")
    assert own.kind == "failed" and own.error is not None
    assert own.error["code"] == "stalled" and own.error["stack"] == "File x, line 3"
    other = decisions.exit_outcome("run_b", 1, None, "stalled:run_a", -9, "File x, line 3")
    assert other.kind == "interrupted"  # runs again, keeps its retries
    hook = decisions.exit_outcome("run_b", 1, None, "stalled:", -9, "File x, line 3")
    assert hook.kind == "interrupted"
    assert decisions.stall_kill_reason("run_a", None, 10.0) == "stalled:run_a"
    assert decisions.stall_kill_reason("run_a", 20.0, 10.0) == "stalled:run_a"
    assert decisions.stall_kill_reason("run_a", 5.0, 10.0) is None  # its max_duration kill
    assert decisions.stall_kill_reason(None, None, 10.0) == "stalled:"


def test_a_blocked_event_loop_fails_its_attempt_and_spares_its_neighbours(tmp_path: Path) -> None:
    asyncio.run(block_the_loop(tmp_path))


async def block_the_loop(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.conveyor]\nproject = "proj_stall"\ndirs = ["tasks"]\nstall_timeout = 1.5\n'
    )
    (project / "tasks" / "stall.py").write_text(TASKS)
    pids = tmp_path / "neighbour.pids"
    store = open_store(str(tmp_path / "conveyor.db"))
    store.migrate()
    engine = Engine(store, worker_timeout=10)
    env = engine.environments.ensure("proj_stall", "dev", "dev")
    supervisor = Supervisor(
        LocalLink(engine, env.id), root=project, worker_id="wrk_stall", executors=1
    )
    try:
        assert await supervisor.load()
        runner = asyncio.create_task(supervisor.run())
        neighbour = engine.tasks.trigger(env.id, "neighbour", {"pids": str(pids), "seconds": 4})
        deadline = time.monotonic() + 30
        while not pids.exists():
            assert time.monotonic() < deadline, "the neighbour never started"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        blocker = engine.tasks.trigger(env.id, "blocker", {})
        while not all(
            engine.runs.get(env.id, r.id).status in ("COMPLETED", "FAILED", "CRASHED")
            for r in (neighbour, blocker)
        ):
            assert time.monotonic() < deadline + 30, "the runs never ended"
            await asyncio.sleep(0.1)
        took = time.monotonic() - started
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

        ran = engine.runs.get(env.id, blocker.id)
        assert ran.status == "COMPLETED" and ran.output == "recovered"
        first = engine.runs.attempts(env.id, blocker.id)[0]
        assert first.status == "FAILED" and first.error is not None
        assert first.error.code == "stalled"
        assert "time.sleep(60)" in (first.error.stack or "")
        assert took < 20  # the 60 s sleep was cut short
        lines = [line for line in engine.runs.logs(env.id, blocker.id) if line.level == "error"]
        assert len(lines) == 1 and "blocked its executor's event loop" in lines[0].message
        assert "stall.py" in lines[0].message  # where it blocked
        stack = (lines[0].attributes or {}).get("stack", "")
        assert "stall.py" in stack and "time.sleep(60)" in stack
        assert stack.startswith('  File "') and "<frozen" not in stack  # the task's code only

        spared = engine.runs.get(env.id, neighbour.id)
        assert spared.status == "COMPLETED"  # with max_attempts 1: the stall used up no retry
        first_pid, second_pid = pids.read_text().split()
        assert first_pid != second_pid  # it ran again, in the fresh executor
    finally:
        for proc in supervisor.all_processes():
            proc.kill("test over")
        store.close()
