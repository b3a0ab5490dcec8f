"""Tasks with on_complete, on_wait and on_resume hooks (tests/e2e/test_lifecycle_hooks.py); the
hooks append one line per call to hooks.log."""

import asyncio
import time

from conveyor import logger, queue, task, wait

from .hooks import record


def on_complete(payload, result, ctx):
    if result.ok:
        record(f"on_complete {ctx.run.id} ok {result.output}")
    else:
        record(f"on_complete {ctx.run.id} {result.error.status} {result.error.code}")


def on_wait(payload, what, ctx):
    record(f"on_wait {ctx.run.id} {what.kind} {what.id} {time.time()}")


async def on_resume(payload, what, ctx):
    record(f"on_resume {ctx.run.id} {what.kind} {what.id} {time.time()}")


@task(id="completes-or-fails", retry={"max_attempts": 1}, on_complete=on_complete)
async def completes_or_fails(payload):
    if payload.get("fail"):
        raise RuntimeError("boom")
    return payload.get("n")


@task(id="expires-completing", queue=queue("parked-completing"), on_complete=on_complete)
async def expires_completing(payload):
    return "never runs: its queue is paused in the test"


@task(id="lifecycle-child")
async def lifecycle_child(payload):
    await asyncio.sleep(payload)
    return payload


@task(id="waits-with-hooks", on_wait=on_wait, on_resume=on_resume)
async def waits_with_hooks(payload):
    await wait.for_(seconds=6)  # past the in-process limit: the run suspends
    child = await lifecycle_child.trigger_and_wait(2)
    return child.unwrap()


@task(id="waits-for-token-with-hooks", on_wait=on_wait, on_resume=on_resume)
async def waits_for_token_with_hooks(payload):
    token = await wait.create_token(timeout="1h")
    logger.info("token", id=token.id)
    return (await wait.for_token(token)).output
