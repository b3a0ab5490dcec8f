"""A batch's own idempotency key in the testing kit, as on the platform (engine/batches.py):
the second call with the key gets the same batch, cached, and makes no run; a retry keeps the
children that completed and redoes the failed ones; the key of another batch is a conflict."""

from __future__ import annotations

from typing import Any

from conveyor import AbortTaskRunError, RunStatus, batch, task, testing


@task(id="kit-bk-child", retry={"max_attempts": 1})
async def child(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("fail"):
        raise AbortTaskRunError("told to fail")
    return payload


@task(id="kit-bk-twice", retry={"max_attempts": 1})
async def twice(payload: dict[str, Any]) -> dict[str, Any]:
    items = [{"payload": {"n": 1}}, {"payload": {"n": 2}}]
    first = await child.batch_trigger(items, idempotency_key="k")
    second = await child.batch_trigger(items, idempotency_key="k")
    mixed = [{"task": child, "payload": {"n": 3}}]
    waited = await batch.trigger_by_task_and_wait(mixed, idempotency_key="m")
    again = await batch.trigger_by_task_and_wait(mixed, idempotency_key="m")
    if payload.get("other_items"):
        await child.batch_trigger(items * 2, idempotency_key="k")
    return {
        "same": first.batch_id == second.batch_id,
        "same_runs": [r.id for r in first.runs] == [r.id for r in second.runs],
        "cached": [first.is_cached, second.is_cached, waited.is_cached, again.is_cached],
        "waited": [waited.id == again.id, [r.output for r in again.runs]],
    }


@task(id="kit-bk-retry", retry={"max_attempts": 2})
async def retried(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    items = [{"payload": {"n": 1}}, {"payload": {"n": 2, "fail": ctx.attempt.number == 1}}]
    results = await child.batch_trigger_and_wait(items, idempotency_key="b")
    if not results.ok:
        raise RuntimeError("a child failed")
    return {"batch": results.id, "runs": [r.id for r in results.runs]}


def test_the_same_key_gives_the_same_batch_and_makes_no_run() -> None:
    result = testing.run_sync(twice, {})
    assert result.ok, result.error
    assert result.output == {
        "same": True,
        "same_runs": True,
        "cached": [False, True, False, True],
        "waited": [True, [{"n": 3}]],
    }
    assert len(result.children) == 3


def test_a_retry_keeps_the_completed_children_and_redoes_the_failed_one() -> None:
    result = testing.run_sync(retried, {})
    assert result.ok and result.attempts == 2, result.error
    runs = result.runs_of(child)
    assert [r.payload["n"] for r in runs] == [1, 2, 2]
    assert [r.status for r in runs] == [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPLETED]
    assert result.output["runs"] == [runs[0].id, runs[2].id]


def test_the_key_of_another_batch_is_a_conflict() -> None:
    result = testing.run_sync(twice, {"other_items": True})
    assert not result.ok
    assert "belongs to batch" in str(result.error)
