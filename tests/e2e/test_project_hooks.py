"""Project-wide hooks and middleware (`conveyor.hooks`, `@middleware`) on both topologies: a
middleware's ContextVar reaches the run function (async and plain), middleware nest in order,
and the project's on_success / on_failure hooks fire once for every task's runs."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import DevServer, TeamPlatform

MODULE = """
import contextvars
from pathlib import Path

from conveyor import hooks, middleware, task

LOG = Path(__file__).resolve().parent.parent / "project-hooks.log"
tenant = contextvars.ContextVar("tenant", default=None)


def note(line):
    with LOG.open("a") as f:
        f.write(line + "\\n")


@middleware
async def outer(ctx, call_next):
    token = tenant.set(f"tenant-of-{ctx.task.id}")
    try:
        return await call_next()
    finally:
        tenant.reset(token)


@middleware
async def inner(ctx, call_next):
    note(f"inner {ctx.run.id} saw {tenant.get()}")
    return await call_next()


@hooks.on_success
def succeeded(payload, output, ctx):
    note(f"success {ctx.run.id}")


@hooks.on_failure
async def failed(payload, error, ctx):
    note(f"failure {ctx.run.id} {error.message}")


@task(id="uses-locals")
async def uses_locals(payload):
    return {"tenant": tenant.get()}


@task(id="sync-locals")
def sync_locals(payload):
    return {"tenant": tenant.get()}


@task(id="always-fails", retry={"max_attempts": 1})
async def always_fails(payload):
    raise RuntimeError("boom")
"""


def lines(root: Path) -> list[str]:
    path = root / "project-hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def test_middleware_and_project_hooks_wrap_every_task(
    fresh_platform: DevServer | TeamPlatform,
) -> None:
    (fresh_platform.root / "tasks" / "project_hooks.py").write_text(MODULE)
    fresh_platform.start()
    with fresh_platform.client() as client:
        asynchronous = client.runs.poll(client.trigger("uses-locals", {}).id, timeout=30)
        plain = client.runs.poll(client.trigger("sync-locals", {}).id, timeout=30)
        failing = client.runs.poll(client.trigger("always-fails", {}).id, timeout=30)
    assert asynchronous.output == {"tenant": "tenant-of-uses-locals"}
    assert plain.output == {"tenant": "tenant-of-sync-locals"}  # copied into its thread
    assert failing.status == "FAILED"
    wanted = {
        f"success {asynchronous.id}",
        f"success {plain.id}",
        f"failure {failing.id} boom",
        f"inner {asynchronous.id} saw tenant-of-uses-locals",  # the outer one ran first
    }
    deadline = time.monotonic() + 20
    while not wanted <= set(lines(fresh_platform.root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = lines(fresh_platform.root)
    assert wanted <= set(seen), seen
    assert seen.count(f"success {asynchronous.id}") == 1  # once
