"""Tasks of tests/e2e/test_batch_idempotency.py: a batch's own idempotency key inside runs."""

from conveyor import AbortTaskRunError, batch, idempotency_keys, task

from .idempotency import idem_child


@task(id="bk-child", retry={"max_attempts": 1})
async def bk_child(payload):
    if payload.get("fail"):
        raise AbortTaskRunError("told to fail")
    return payload


@task(id="bk-twice", retry={"max_attempts": 1})
async def bk_twice(payload, ctx):
    """Each kind of batch call twice with one key: as text, or made in `payload["scope"]`."""
    scope = payload.get("scope")

    def key(*parts):
        text = [payload["key"], *parts]
        return "-".join(text) if scope is None else idempotency_keys.create(text, scope=scope)

    items = [{"payload": {"n": 1}}, {"payload": {"n": 2}}]
    first = await bk_child.batch_trigger(items, idempotency_key=key())
    second = await bk_child.batch_trigger(items, idempotency_key=key())
    mixed = [{"task": bk_child, "payload": {"n": 3}}, {"task": idem_child, "payload": {"n": 4}}]
    waited = await batch.trigger_by_task_and_wait(mixed, idempotency_key=key("mixed"))
    again = await batch.trigger_by_task_and_wait(mixed, idempotency_key=key("mixed"))
    return {
        "first": first.batch_id,
        "second": second.batch_id,
        "first_runs": [r.id for r in first.runs],
        "second_runs": [r.id for r in second.runs],
        "cached": [first.is_cached, second.is_cached, waited.is_cached, again.is_cached],
        "waited": waited.id,
        "again": again.id,
        "outputs": [r.output for r in again.runs],
    }


@task(
    id="bk-retry",
    retry={"max_attempts": 2, "min_timeout_ms": 100, "max_timeout_ms": 200, "randomize": False},
)
async def bk_retry(payload, ctx):
    """Attempt 1: a child of a keyed batch it waits for fails, so the attempt fails. Attempt 2
    makes the same calls: the batch it did not wait for is replayed, the completed child kept,
    the failed one triggered again."""
    tag = {"tags": [ctx.run.id]}
    plain = await bk_child.batch_trigger(
        [{"payload": {"n": 0}, "options": tag}], idempotency_key="a"
    )
    items = [
        {"payload": {"n": 1}, "options": tag},
        {"payload": {"n": 2, "fail": ctx.attempt.number == 1}, "options": tag},
    ]
    results = await bk_child.batch_trigger_and_wait(items, idempotency_key="b")
    if not results.ok:
        raise RuntimeError("a child failed")
    return {
        "plain": plain.batch_id,
        "batch": results.id,
        "runs": [r.id for r in results.runs],
        "attempt": ctx.attempt.number,
    }
