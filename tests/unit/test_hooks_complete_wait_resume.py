"""on_complete, on_wait and on_resume (task hooks and `conveyor.hooks`) in the testing kit, which
runs them as the executor does: on_complete once a run has ended, completed or failed, after
on_success / on_failure; on_wait before each wait that waits, on_resume once the code goes on
after it, in the segment that resumes a suspended run; an error in one is logged and changes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor import hooks, task, testing, wait
from conveyor.models import RunStatus
from conveyor.sdk.hooks import RunFailure, Wait

seen: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> Any:
    seen.clear()
    yield
    seen.clear()


def _completed(payload: Any, result: Any, ctx: Any) -> None:
    if result.ok:
        seen.append(f"complete ok {result.output} {result.id == ctx.run.id}")
    else:
        assert isinstance(result.error, RunFailure)
        seen.append(f"complete failed {result.error.status} {result.error.message}")


def _succeeded(payload: Any, output: Any, ctx: Any) -> None:
    seen.append(f"success {output}")


async def _waits(payload: Any, what: Wait, ctx: Any) -> None:
    seen.append(f"wait {what.kind}")


def _resumes(payload: Any, what: Wait, ctx: Any) -> None:
    seen.append(f"resume {what.kind}")


@task(
    id="hk-complete",
    on_success=_succeeded,
    on_complete=_completed,
    retry={"max_attempts": 2, "min_timeout_ms": 10},
)
async def completes(payload: dict[str, Any]) -> str:
    if payload.get("fail"):
        raise ValueError("boom")
    return "fine"


@task(id="hk-child")
async def child(payload: int) -> int:
    return payload * 2


@task(id="hk-waits", on_wait=_waits, on_resume=_resumes)
async def waits(payload: Any, ctx: Any) -> Any:
    await wait.for_(seconds=2)  # short: slept in the attempt
    seen.append("after short")
    await wait.for_(seconds=60)  # suspends the run
    seen.append("after long")
    doubled = (await child.trigger_and_wait(21)).unwrap()
    both = await child.batch_trigger_and_wait([{"payload": 1}, {"payload": 2}])
    await wait.until(datetime(2000, 1, 1, tzinfo=UTC))  # already past: no wait, no hooks
    token = await wait.create_token(timeout="1h")  # nothing completes it: it times out
    approved = (await wait.for_token(token)).ok
    seen.append(f"token was {token.id}")
    return [doubled, [r.output for r in both.runs], approved]


def test_on_complete_gets_the_output_after_on_success_and_the_error_of_a_failed_run() -> None:
    done = testing.run_sync(completes, {})
    assert done.ok
    failed = testing.run_sync(completes, {"fail": True})
    assert failed.status == RunStatus.FAILED and failed.attempts == 2
    # once per run, not per attempt, and after on_success
    assert seen == ["success fine", "complete ok fine True", "complete failed FAILED boom"]


def test_each_wait_that_waits_gets_one_on_wait_and_one_on_resume_across_suspensions() -> None:
    result = testing.run_sync(waits, None)
    assert result.ok, result.error
    assert result.output == [42, [2, 4], False]
    assert seen == [
        "wait duration",
        "resume duration",
        "after short",
        "wait duration",  # the run is suspended here ...
        "after short",  # ... and runs again from the top: code between durable calls replays
        "resume duration",  # the wait it was suspended on: in the segment that resumed it
        "after long",
        "wait run",
        "resume run",
        "wait batch",
        "resume batch",
        "wait token",
        # suspended on the token: the run replays its code up to it, then goes on
        "after short",
        "after long",
        "resume token",
        seen[-1],
    ]
    assert seen[-1].startswith("token was ")


def test_project_hooks_describe_the_wait_and_a_raising_hook_changes_nothing() -> None:
    described: list[Wait] = []

    def on_wait(payload: Any, what: Wait, ctx: Any) -> None:
        described.append(what)
        raise RuntimeError("hook trouble")

    async def on_complete(payload: Any, result: Any, ctx: Any) -> None:
        seen.append(f"project complete {result.ok}")
        raise RuntimeError("complete trouble")

    hooks.on_wait(on_wait)
    hooks.on_complete(on_complete)
    try:
        result = testing.run_sync(waits, None)
    finally:
        hooks.remove(on_wait)
        hooks.remove(on_complete)
    assert result.ok
    assert [w.kind for w in described] == ["duration", "duration", "run", "batch", "token"]
    assert described[4].id.startswith("token_")
    long = described[1]
    assert long.until is not None and long.until.tzinfo is not None and long.id
    assert described[2].id.startswith("run_") and described[3].id.startswith("batch_")
    assert seen[-1] == "project complete True"  # after the task's own hooks
    errors = result.messages("error")
    assert sum("on_wait hook raised RuntimeError: hook trouble" in m for m in errors) == 5
    assert any("on_complete hook raised RuntimeError: complete trouble" in m for m in errors)
