"""An attempt that blocks its executor's event loop (a `time.sleep` in an `async def`) on both
topologies: past the project's `stall_timeout` its run's logs get an error line with the
blocking code's stack, its executor is replaced, the attempt fails and is retried per its
policy, and the attempt that shared the executor runs again without using up its one attempt."""

from __future__ import annotations

import time

from tests.e2e.conftest import DevServer, TeamPlatform, wait_for

MODULE = """
import asyncio, os, time
from conveyor import logger, task

@task(id="loop-blocker", retry={"max_attempts": 2, "min_timeout_ms": 10, "max_timeout_ms": 10})
async def loop_blocker(payload, ctx):
    logger.info("pid", pid=os.getpid())
    if ctx.attempt.number == 1:
        time.sleep(60)  # holds the event loop of every attempt of its executor
    return "recovered"

@task(id="loop-neighbour", retry={"max_attempts": 1})
async def loop_neighbour(payload, ctx):
    logger.info("pid", pid=os.getpid())
    await asyncio.sleep(payload)
    return "done"
"""


def pids(client, run_id: str) -> list[int]:
    return [
        line.attributes["pid"]
        for line in client.runs.logs(run_id)
        if line.message == "pid" and line.attributes
    ]


def test_a_blocked_event_loop_fails_its_attempt_and_spares_its_neighbour(
    fresh_platform: DevServer | TeamPlatform,
) -> None:
    root = fresh_platform.root
    (root / "tasks" / "stalls.py").write_text(MODULE)
    config = root / "pyproject.toml"
    config.write_text(
        config.read_text().replace('dirs = ["tasks"]\n', 'dirs = ["tasks"]\nstall_timeout = 2\n')
    )
    fresh_platform.use_executors(1)  # the two runs share one executor
    fresh_platform.start()
    if isinstance(fresh_platform, TeamPlatform):
        fresh_platform.worker("right").stop()  # and one worker
    with fresh_platform.client() as client:
        neighbour = client.trigger("loop-neighbour", 6)
        wait_for(lambda: pids(client, neighbour.id), what="the neighbour to start")
        started = time.monotonic()
        blocker = client.trigger("loop-blocker", {})
        blocked = client.runs.poll(blocker.id, timeout=60)
        took = time.monotonic() - started
        spared = client.runs.poll(neighbour.id, timeout=60)
        blocker_pids, neighbour_pids = pids(client, blocker.id), pids(client, neighbour.id)
        logs = client.runs.logs(blocker.id)

    assert blocker_pids[0] == neighbour_pids[0]  # they did share the executor
    assert blocked.status == "COMPLETED" and blocked.output == "recovered", blocked.error
    assert took < 30  # the 60 s sleep was cut short
    failed = blocked.attempt_list[0]
    assert failed.status == "FAILED" and failed.error is not None
    assert failed.error.code == "stalled" and "time.sleep(60)" in (failed.error.stack or "")
    errors = [line for line in logs if line.level == "error"]
    assert len(errors) == 1 and "blocked its executor's event loop" in errors[0].message
    assert "time.sleep(60)" in (errors[0].attributes or {}).get("stack", "")
    assert blocker_pids[1] != blocker_pids[0]  # the executor was replaced

    assert spared.status == "COMPLETED" and spared.output == "done"  # max_attempts 1: no retry used
    assert len(neighbour_pids) == 2 and neighbour_pids[1] != neighbour_pids[0]
