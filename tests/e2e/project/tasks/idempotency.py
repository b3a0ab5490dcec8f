"""Tasks of tests/e2e/test_idempotency.py: idempotency keys given inside runs."""

from conveyor import AbortTaskRunError, idempotency_keys, task


@task(id="idem-child", retry={"max_attempts": 1})
async def idem_child(payload):
    if payload.get("fail"):
        raise AbortTaskRunError("told to fail")
    return payload


@task(id="idem-parent", retry={"max_attempts": 1})
async def idem_parent(payload, ctx):
    """Triggers idem-child twice with the same key, as text or made in `payload["scope"]`."""
    scope = payload.get("scope")
    key = payload["key"] if scope is None else idempotency_keys.create(payload["key"], scope=scope)
    first = await idem_child.trigger({"parent": ctx.run.id}, idempotency_key=key)
    second = await idem_child.trigger({"parent": ctx.run.id, "n": 2}, idempotency_key=key)
    return {"first": first.id, "second": second.id, "cached": second.is_cached, "key": str(key)}


@task(id="idem-token", retry={"max_attempts": 1})
async def idem_token(payload):
    """Makes a token with a plain key twice, and one with a global key."""
    from conveyor import wait

    first = await wait.create_token(idempotency_key="approve", timeout="1h")
    again = await wait.create_token(idempotency_key="approve", timeout="1h")
    shared = await wait.create_token(
        idempotency_key=idempotency_keys.create("approve-all", scope="global"), timeout="1h"
    )
    return {"first": first.id, "again": again.id, "shared": shared.id}


def _decide(payload, error, ctx):
    """catch_error of `caught`: what the payload asks for."""
    from datetime import UTC, datetime, timedelta

    if payload.get("skip"):
        return {"skip_retrying": True}
    if payload.get("retry_in"):
        return {"retry_at": datetime.now(UTC) + timedelta(seconds=payload["retry_in"])}
    if payload.get("bad_answer"):
        return "retry please"
    return None


@task(
    id="caught",
    retry={"max_attempts": 3, "min_timeout_ms": 100, "randomize": False},
    catch_error=_decide,
)
async def caught(payload, ctx):
    if ctx.attempt.number < 2:
        raise RuntimeError(f"attempt {ctx.attempt.number} fails")
    return {"attempt": ctx.attempt.number}
