"""`conveyor.testing.run`: a task's run in the test's process, its durable calls answered in
memory, with children inline or mocked, waits on a virtual clock, tokens completed by the test,
retries without sleeping, and suspension and replay as on the platform."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor import (
    AbortTaskRunError,
    PayloadError,
    RunStatus,
    logger,
    schema_task,
    step,
    task,
    testing,
    wait,
)

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
effects: list[str] = []


@pytest.fixture(autouse=True)
def _forget_effects() -> None:
    effects.clear()


# -- tasks the tests run ----------------------------------------------------------------------


@task(id="kit-double")
async def double(payload: dict[str, Any], ctx: Any) -> int:
    await wait.for_(seconds=30)
    logger.info("doubled", n=payload["n"])
    return int(payload["n"]) * 2


@task(id="kit-parent")
async def parent(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    effects.append("outside steps")
    receipt = await step.run("charge", lambda: effects.append("charged") or "r-1")
    logger.info("charged", receipt=receipt)
    child = await double.trigger_and_wait({"n": payload["n"]})
    return {"receipt": receipt, "child": child.output, "child_ok": child.ok}


@task(id="kit-clock")
async def clock(payload: Any) -> dict[str, float]:
    began = await step.now()
    await wait.for_(hours=2)
    after_for = await step.now()
    await wait.until(after_for + timedelta(days=3))
    after_until = await step.now()
    return {
        "for": (after_for - began).total_seconds(),
        "until": (after_until - after_for).total_seconds(),
    }


@task(id="kit-fan-out")
async def fan_out(payload: list[int]) -> list[Any]:
    results = await double.batch_trigger_and_wait([{"payload": {"n": n}} for n in payload])
    return [r.output for r in results.runs]


@task(id="kit-background")
async def background(payload: Any) -> str:
    handle = await double.trigger({"n": 5})
    return handle.id


@task(id="kit-approval")
async def approval(payload: dict[str, Any]) -> dict[str, Any]:
    token = await wait.create_token(
        timeout=payload.get("timeout"), idempotency_key="approve-1", tags=["review"]
    )
    result = await wait.for_token(token)
    now = await step.now()
    return {"ok": result.ok, "data": result.output, "at": now.isoformat(), "token": token.id}


@task(id="kit-approver")
async def approver(payload: dict[str, Any]) -> None:
    await wait.complete_token(payload["token"], {"by": "approver"})


@task(id="kit-self-approval")
async def self_approval(payload: Any) -> Any:
    token = await wait.create_token()
    await approver.trigger({"token": token.id})
    return (await wait.for_token(token)).output


@task(
    id="kit-flaky",
    retry={"max_attempts": 4, "min_timeout_ms": 60_000, "max_timeout_ms": 600_000},
)
async def flaky(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    first = await step.run("fetch", lambda: effects.append("fetched") or "data")
    if ctx.attempt.number <= payload["fail"]:
        raise RuntimeError(f"attempt {ctx.attempt.number} failed")
    return {"attempt": ctx.attempt.number, "first": first}


@task(id="kit-aborts", retry={"max_attempts": 5})
async def aborts(payload: Any) -> None:
    raise AbortTaskRunError("no point in trying again")


@task(id="kit-changes-its-calls")
async def changes_its_calls(payload: Any) -> str:
    effects.append("ran")
    name = "first" if effects.count("ran") == 1 else "second"
    await step.run(name, lambda: name)
    await wait.for_(minutes=10)
    return name


class Greeting(BaseModel):
    name: str


@schema_task(id="kit-greet", schema=Greeting)
def greet(payload: Greeting) -> str:
    logger.info("greeting", name=payload.name)
    return f"hello {payload.name}"


@task(id="kit-sync-waits")
def sync_waits(payload: Any) -> None:
    asyncio.run(wait.for_(seconds=1))


@task(id="kit-orphan-parent")
async def orphan_parent(payload: Any) -> Any:
    from conveyor.sdk.task import Task

    ghost: Task[Any] = Task(lambda p: p, id="kit-ghost")  # defined nowhere a test can find
    return (await ghost.trigger_and_wait({})).error


def _succeeded(payload: Any, output: Any, ctx: Any) -> None:
    effects.append(f"on_success {output}")


def _failed(payload: Any, error: Any, ctx: Any) -> None:
    effects.append(f"on_failure {error.message}")


@task(id="kit-hooked", on_success=_succeeded, on_failure=_failed, retry={"max_attempts": 1})
async def hooked(payload: dict[str, Any]) -> str:
    if payload.get("fail"):
        raise ValueError("boom")
    return "fine"


# -- durable calls, replay and children ---------------------------------------------------------


def test_a_step_runs_once_though_the_run_replays_after_each_wait() -> None:
    result = testing.run_sync(parent, {"n": 21})
    assert result.ok and result.status == RunStatus.COMPLETED
    assert result.output == {"receipt": "r-1", "child": 42, "child_ok": True}
    assert effects.count("charged") == 1
    # the run suspended on its child and ran again from the top, as on the platform
    assert effects.count("outside steps") == 2
    assert result.messages() == ["charged"]  # a replay does not log twice
    assert [e.key for e in result.journal] == ["step:charge#1", "trigger_and_wait:kit-double#1"]
    assert result.journal[0].value == "r-1"
    assert result.journal[1].result["output"] == 42


def test_a_child_runs_inline_with_its_own_logs_and_journal() -> None:
    result = testing.run_sync(parent, {"n": 2})
    [child] = result.children
    assert child.task_id == "kit-double" and child.payload == {"n": 2}
    assert child.output == 4 and not child.mocked
    assert child.messages() == ["doubled"]
    assert child.logs[0].attributes == {"n": 2}
    assert [e.key for e in child.journal] == ["wait.for#1"]
    assert result.runs_of(double) == [child]


def test_waits_jump_the_clock_instead_of_sleeping() -> None:
    began = time.monotonic()
    result = testing.run_sync(clock, None, now=START)
    assert time.monotonic() - began < 5
    assert result.output == {"for": 7200.0, "until": 3 * 86400.0}
    assert result.journal[0].value == START.isoformat()


def test_a_batch_runs_its_children_and_answers_in_input_order() -> None:
    result = testing.run_sync(fan_out, [1, 2, 3])
    assert result.output == [2, 4, 6]
    assert [c.payload for c in result.children] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_child_triggered_without_waiting_runs_too_before_the_test_gets_the_result() -> None:
    result = testing.run_sync(background, None)
    [child] = result.children
    assert result.output == child.id
    assert child.status == RunStatus.COMPLETED and child.output == 10


def test_a_child_no_test_can_find_fails_the_way_a_missing_task_does() -> None:
    result = testing.run_sync(orphan_parent, None)
    assert result.output["name"] == "TaskNotFound"
    assert "kit-ghost" in result.output["message"] and "tasks=[...]" in result.output["message"]


# -- mocks ---------------------------------------------------------------------------------------


def test_a_mocked_child_answers_at_once_and_records_its_payloads() -> None:
    mocked = testing.mock(double, output=lambda payload: payload["n"] + 1000)
    result = testing.run_sync(parent, {"n": 7}, mocks=[mocked])
    assert result.output["child"] == 1007
    assert mocked.calls == [{"n": 7}]
    assert result.children[0].mocked and result.children[0].messages() == []


def test_a_child_mocked_with_an_error_fails_and_the_parent_sees_it() -> None:
    result = testing.run_sync(
        parent, {"n": 1}, mocks=[testing.mock(double, error=ConnectionError("tts down"))]
    )
    assert result.output["child_ok"] is False
    [child] = result.children
    assert child.status == RunStatus.FAILED
    assert child.error["name"] == "ConnectionError" and child.error["message"] == "tts down"


# -- tokens ----------------------------------------------------------------------------------------


def test_a_token_is_completed_by_the_completion_matching_its_idempotency_key() -> None:
    result = testing.run_sync(
        approval,
        {},
        tokens=[
            testing.complete_token({"approved": False}, idempotency_key="other"),
            testing.complete_token({"approved": True}, idempotency_key="approve-1"),
        ],
    )
    assert result.output["ok"] is True and result.output["data"] == {"approved": True}


def test_a_completion_may_be_computed_from_the_token_it_completes() -> None:
    seen = []

    def answer(token: Any) -> dict[str, Any]:
        seen.append(token)
        return {"approved": token.idempotency_key}

    result = testing.run_sync(
        approval, {}, tokens=[testing.complete_token(answer, tags=["review"])]
    )
    assert result.output["data"] == {"approved": "approve-1"}
    assert seen[0].id == result.output["token"] and seen[0].status == "PENDING"


def test_a_token_nothing_completes_times_out_when_the_clock_reaches_its_timeout() -> None:
    result = testing.run_sync(approval, {"timeout": "24h"}, now=START)
    assert result.ok and result.output["ok"] is False and result.output["data"] is None
    assert result.output["at"] == (START + timedelta(hours=24)).isoformat()


def test_a_token_without_timeout_that_nothing_completes_stalls_the_test_with_a_hint() -> None:
    with pytest.raises(testing.RunStalled, match="approve-1") as info:
        testing.run_sync(approval, {})
    assert "testing.complete_token" in str(info.value)


def test_a_run_may_complete_a_token_another_run_waits_on() -> None:
    result = testing.run_sync(self_approval, None)
    assert result.output == {"by": "approver"}
    assert result.children[0].task_id == "kit-approver"


# -- retries and failures ------------------------------------------------------------------------


def test_failed_attempts_are_retried_per_the_policy_without_sleeping() -> None:
    began = time.monotonic()
    result = testing.run_sync(flaky, {"fail": 3})
    assert time.monotonic() - began < 5
    assert result.ok and result.attempts == 4
    assert result.output == {"attempt": 4, "first": "data"}
    assert effects.count("fetched") == 1  # a journaled step is replayed on a retry


def test_a_run_that_fails_every_attempt_fails_with_the_last_error() -> None:
    result = testing.run_sync(flaky, {"fail": 10})
    assert not result.ok and result.status == RunStatus.FAILED and result.attempts == 4
    assert result.error["message"] == "attempt 4 failed"
    assert "RuntimeError" in result.error["stack"]
    with pytest.raises(Exception, match="attempt 4 failed"):
        result.unwrap()


def test_abort_is_not_retried() -> None:
    result = testing.run_sync(aborts, None)
    assert result.status == RunStatus.FAILED and result.attempts == 1
    assert result.error["code"] == "aborted"


def test_code_that_makes_other_durable_calls_when_it_replays_fails_with_journal_mismatch() -> None:
    result = testing.run_sync(changes_its_calls, None)
    assert result.status == RunStatus.FAILED
    assert result.error["code"] == "journal_mismatch"
    assert "step 'first'" in result.error["message"]


def test_hooks_run_after_the_run_ends() -> None:
    testing.run_sync(hooked, {})
    testing.run_sync(hooked, {"fail": True})
    assert effects == ["on_success fine", "on_failure boom"]


# -- payloads and plain functions -----------------------------------------------------------------


def test_a_schema_task_gets_its_model_and_a_wrong_payload_is_refused_at_once() -> None:
    result = testing.run_sync(greet, {"name": "Ada"})
    assert result.output == "hello Ada" and result.messages() == ["greeting"]
    with pytest.raises(PayloadError, match="kit-greet"):
        testing.run_sync(greet, {"nom": "Ada"})


def test_a_plain_function_task_cannot_make_durable_calls() -> None:
    result = testing.run_sync(sync_waits, None)
    assert result.status == RunStatus.FAILED and result.attempts == 1
    assert "async def" in result.error["message"]


def test_run_is_awaitable_in_an_async_test() -> None:
    async def main() -> testing.RunResult:
        return await testing.run(double, {"n": 4}, options={"tags": ["t1"]})

    result = asyncio.run(main())
    assert result.output == 8 and result.tags == ["t1"]


def test_what_is_not_a_task_or_a_mock_is_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="takes a task"):
        testing.run_sync(lambda p: p, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mocks="):
        testing.run_sync(double, {"n": 1}, mocks=[double])


def test_a_retry_runs_again_only_children_that_failed_before_it_began() -> None:
    """An attempt that waits for an earlier attempt's child, and sees it fail, replays that
    failure (it waited for it); a retry that begins after a failure triggers the child again."""
    import asyncio as _asyncio

    from conveyor import task as _task
    from conveyor import testing as _testing
    from conveyor import wait as _wait

    @_task(id="kit-slow-fail", retry={"max_attempts": 1})
    async def slow_fail(payload: dict) -> None:
        await _wait.for_(seconds=60)
        raise RuntimeError("child failed")

    @_task(id="kit-parent-r", retry={"max_attempts": 2, "min_timeout_ms": 1000})
    async def parent(payload: dict, ctx: Any) -> dict:
        async def boom() -> None:
            for _ in range(3):
                await _asyncio.sleep(0)
            if ctx.attempt.number == 1:
                raise RuntimeError("attempt 1 fails while its child is still running")

        result, _ = await _asyncio.gather(slow_fail.trigger_and_wait({}), boom())
        return {"child_ok": result.ok, "attempt": ctx.attempt.number}

    result = _testing.run_sync(parent, {}, tasks=[slow_fail])
    assert result.status == "COMPLETED" and result.output == {"child_ok": False, "attempt": 2}
    assert len(result.runs_of(slow_fail)) == 1  # attempt 2 waited for it: not triggered again


def test_catch_error_decides_retries_in_the_kit_as_on_the_platform() -> None:
    from datetime import UTC, datetime

    from conveyor import task as _task
    from conveyor import testing as _testing

    def decide(payload: dict, error: BaseException, ctx: Any) -> Any:
        if payload["answer"] == "skip":
            return {"skip_retrying": True}
        if payload["answer"] == "later":
            return {"retry_at": datetime.fromtimestamp(ctx.attempt.started_at + 3600, UTC)}
        return "nonsense"

    @_task(id="kit-caught", retry={"max_attempts": 3, "min_timeout_ms": 1000}, catch_error=decide)
    async def kit_caught(payload: dict, ctx: Any) -> dict:
        if ctx.attempt.number < 2:
            raise RuntimeError("a 429")
        return {"attempt": ctx.attempt.number, "at": ctx.attempt.started_at}

    skipped = _testing.run_sync(kit_caught, {"answer": "skip"})
    assert skipped.status == "FAILED" and skipped.attempts == 1
    start = datetime(2030, 1, 1, tzinfo=UTC)
    later = _testing.run_sync(kit_caught, {"answer": "later"}, now=start)
    assert later.status == "COMPLETED" and later.attempts == 2
    assert later.output["at"] - start.timestamp() >= 3600  # the hour, not the policy's 1 s
    nonsense = _testing.run_sync(kit_caught, {"answer": "nonsense"})
    assert nonsense.status == "COMPLETED" and nonsense.attempts == 2
    assert any("catch_error failed" in m for m in nonsense.messages("error"))


def test_project_hooks_and_middleware_run_in_the_kit_as_on_the_platform() -> None:
    import contextvars

    from conveyor import hooks as project_hooks
    from conveyor import middleware
    from conveyor import task as _task
    from conveyor import testing as _testing

    seen: list[str] = []
    tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)

    async def locals_middleware(ctx: Any, call_next: Any) -> Any:
        token = tenant.set("acme")
        try:
            return await call_next()
        finally:
            tenant.reset(token)

    def on_success(payload: Any, output: Any, ctx: Any) -> None:
        seen.append(f"success {output}")

    @_task(id="kit-locals")
    async def kit_locals(payload: dict) -> str | None:
        return tenant.get()

    middleware(locals_middleware)
    project_hooks.on_success(on_success)
    try:
        result = _testing.run_sync(kit_locals, {})
    finally:
        project_hooks.remove(locals_middleware)
        project_hooks.remove(on_success)
    assert result.output == "acme" and seen == ["success acme"]
    assert _testing.run_sync(kit_locals, {}).output is None  # removed: nothing wraps it now


def test_catch_error_sees_the_code_s_own_timeouts_and_call_next_works_once() -> None:
    from conveyor import hooks as project_hooks
    from conveyor import middleware
    from conveyor import task as _task
    from conveyor import testing as _testing

    @_task(
        id="kit-net-timeout",
        retry={"max_attempts": 3},
        catch_error=lambda payload, error, ctx: {"skip_retrying": True},
    )
    async def net_timeout(payload: dict) -> None:
        raise TimeoutError("read timed out")  # a network call's, not max_duration

    result = _testing.run_sync(net_timeout, {})
    assert result.status == "FAILED" and result.attempts == 1

    async def twice(ctx: Any, call_next: Any) -> Any:
        await call_next()
        return await call_next()  # would run the function, and its steps, again

    @_task(id="kit-once", retry={"max_attempts": 1})
    async def once(payload: dict) -> int:
        return 1

    middleware(twice)
    try:
        refused = _testing.run_sync(once, {})
    finally:
        project_hooks.remove(twice)
    assert refused.status == "FAILED" and "call_next() twice" in refused.error["message"]
