"""Tasks for the durable-execution tests: steps, children, batches, waits, tokens."""

import asyncio
import time
from pathlib import Path

from conveyor import batch, logger, queue, step, task, usage, wait

EFFECTS = Path(__file__).resolve().parent.parent / "effects.log"


def effect(name: str) -> str:
    """A side effect the tests count: one line per call."""
    with EFFECTS.open("a") as f:
        f.write(name + "\n")
    return name


solo = queue("solo", concurrency_limit=1)


@task(id="double", queue=solo)
async def double(payload):
    await asyncio.sleep(payload.get("sleep", 0.05))
    if payload.get("fail"):
        raise ValueError(f"cannot double {payload['n']}")
    return payload["n"] * 2


@task(id="fan-out", queue=solo)
async def fan_out(payload, ctx):
    one = await double.trigger_and_wait({"n": 21})
    results = await double.batch_trigger_and_wait(
        [
            {
                "payload": {"n": i, "fail": i == payload.get("fail_index")},
                "options": {"max_attempts": payload.get("max_attempts", 1)},
            }
            for i in range(payload.get("count", 5))
        ]
    )
    return {
        "one": one.unwrap(),
        "ok": [r.ok for r in results.runs],
        "outputs": [r.output for r in results.runs],
        "ids": [r.id for r in results.runs],
        "errors": [r.error and r.error.get("message") for r in results.runs],
    }


@task(id="by-task")
async def by_task(payload):
    results = await batch.trigger_by_task_and_wait(
        [
            {"task": double, "payload": {"n": 1}},
            {"task": echo_child, "payload": {"hello": "world"}},
        ]
    )
    return [r.output for r in results.runs]


@task(id="echo-child")
async def echo_child(payload):
    return payload


@task(id="unwrapper")
async def unwrapper(payload):
    result = await double.trigger_and_wait({"n": 1, "fail": True}, max_attempts=1)
    try:
        result.unwrap()
    except Exception as exc:
        return {"raised": type(exc).__name__, "run_id": exc.run_id, "error": exc.error["message"]}
    return {"raised": None}


@task(id="napper", max_duration=3)
async def napper(payload, ctx):
    first = await step.run("first", effect, f"first {ctx.run.id}")
    started = await step.now()
    await wait.for_(seconds=payload.get("seconds", 6))
    second = await step.run("second", effect, f"second {ctx.run.id}")
    return {
        "first": first,
        "second": second,
        "started": started.isoformat(),
        "waited": time.time() - started.timestamp(),
    }


@task(id="short-nap")
async def short_nap(payload):
    t0 = time.time()
    await wait.for_(seconds=1)
    return time.time() - t0


@task(id="approval")
async def approval(payload, ctx):
    token = await wait.create_token(
        timeout=payload.get("timeout", "1h"), tags=["approval"], idempotency_key=payload.get("key")
    )
    logger.info("token", id=token.id, url=token.url)
    result = await wait.for_token(token)
    await step.run("after", effect, f"after {ctx.run.id}")
    return {
        "ok": result.ok,
        "output": result.output,
        "error": result.error and result.error.get("code"),
    }


@task(id="parallel")
async def parallel(payload, ctx):
    a, b, _, s = await asyncio.gather(
        double.trigger_and_wait({"n": 2}),
        double.trigger_and_wait({"n": 3}),
        wait.for_(seconds=6),
        step.run("side", effect, f"side {ctx.run.id}"),
    )
    u1 = await step.uuid()
    return {"a": a.output, "b": b.output, "side": s, "uuid": u1}


@task(id="crash-after-step", retry={"max_attempts": 3, "min_timeout_ms": 100, "randomize": False})
async def crash_after_step(payload, ctx):
    await step.run("once", effect, f"once {ctx.run.id}")
    import os

    logger.info("pid", pid=os.getpid(), attempt=ctx.attempt.number)
    if ctx.attempt.number == 1:
        await asyncio.sleep(30)
    return ctx.attempt.number


@task(id="renamed")
async def renamed(payload, ctx):
    await step.run("original-name", effect, f"original {ctx.run.id}")
    await wait.for_(seconds=8)
    return "done"


@task(id="grand-parent")
async def grand_parent(payload):
    await blocker_child.trigger_and_wait({})
    return "never"


@task(id="blocker-child")
async def blocker_child(payload):
    await wait.for_(seconds=600)


@task(id="sleeper")
async def sleeper(payload, ctx):
    await wait.for_(seconds=payload.get("seconds", 8))
    return ctx.run.id


@task(id="metered")
async def metered(payload, ctx):
    """Works, waits on the test's token (suspended: it holds no slot), works again, and says
    what it used."""
    await asyncio.sleep(payload["work"])
    await wait.for_token(payload["gate"])
    await asyncio.sleep(payload["work"])
    used = usage.current()
    return {"compute": used.compute_seconds, "attempt": used.attempt_compute_seconds}


@task(id="gated")
async def gated(payload, ctx):
    """Waits on the token made by the test (one gate for many runs), then ends."""
    result = await wait.for_token(payload["gate"])
    return result.output


@task(id="chaos", retry={"max_attempts": 10, "min_timeout_ms": 100, "randomize": False})
async def chaos(payload, ctx):
    """A mix of every durable call, for the kill-at-random test. Each kill crashes the attempts
    in flight, and a crashed attempt counts against the retries: hence 10 of them."""
    kind = payload["kind"]
    await step.run("begin", effect, f"begin {ctx.run.id}")
    if kind == "fan-out":
        results = await double.batch_trigger_and_wait(
            [{"payload": {"n": i, "sleep": 0.2}, "options": {"max_attempts": 10}} for i in range(4)]
        )
        value = sum(r.output for r in results.runs)
    elif kind == "wait":
        await wait.for_(seconds=payload.get("seconds", 3))
        value = 0
    else:
        token = await wait.create_token(idempotency_key=f"chaos-{ctx.run.id}", timeout="10m")
        result = await wait.for_token(token)
        value = result.output["n"]
    await step.run("end", effect, f"end {ctx.run.id}")
    return value


@task(id="short-wait-in-budget", max_duration=2)
async def short_wait_in_budget(payload):
    await wait.for_(seconds=3)  # longer than max_duration, but waits are not compute time
    return "done"


@task(id="logs-across-resume")
async def logs_across_resume(payload):
    logger.info("before 1")
    logger.info("before 2")
    await wait.for_(seconds=6)
    for i in range(3):
        logger.info(f"after {i}")
    return "done"


@task(id="returns-result")
async def returns_result(payload):
    return await double.trigger_and_wait({"n": 2})


@task(id="returns-set")
async def returns_set(payload):
    return {1, 2}


@task(id="sync-durable")
def sync_durable(payload):
    import asyncio as aio

    return aio.run(step.run("x", effect, "never"))


@task(id="fails-once", retry={"max_attempts": 1})
async def fails_once(payload):
    """Fails the first time it runs for `payload["marker"]` (a file), then succeeds."""
    marker = Path(payload["marker"]) if payload.get("marker") else None
    if marker is not None and not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError(f"item {payload['i']} fails this time")
    return payload["i"]


@task(id="retry-children", retry={"max_attempts": 2, "min_timeout_ms": 100, "randomize": False})
async def retry_children(payload, ctx):
    """Waits for children one of which fails the first time; fails itself then, and its retry
    must run the failed children again and keep the others."""
    import json

    items = [{"payload": {"i": i, "marker": payload["markers"][i]}} for i in range(3)]
    results = await fails_once.batch_trigger_and_wait(items)
    single = await fails_once.trigger_and_wait({"i": 9, "marker": payload["single_marker"]})
    seen = {"batch": [r.id for r in results.runs], "single": single.id}
    with open(payload["record"], "a") as record:  # what each attempt saw
        record.write(json.dumps({"attempt": ctx.attempt.number, **seen}) + "\n")
    if not single.ok or not all(r.ok for r in results.runs):
        raise RuntimeError("a child failed")
    return {"outputs": [r.output for r in results.runs] + [single.output], **seen}
