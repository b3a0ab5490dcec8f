import asyncio
import logging
import os
import time
from typing import Literal

from pydantic import BaseModel

from conveyor import AbortTaskRunError, logger, queue, retry, schema_task, task

from .hooks import on_cancel, on_failure, on_start, on_success

three = queue("three", concurrency_limit=3)


@task(id="sleepy", queue=three)
async def sleepy(payload, ctx):
    await asyncio.sleep(payload.get("seconds", 0.8))
    return {"run": ctx.run.id}


@task(
    id="flaky",
    retry={"max_attempts": 3, "min_timeout_ms": 300, "factor": 2, "randomize": False},
    on_failure=on_failure,
    on_success=on_success,
)
async def flaky(payload, ctx):
    if ctx.attempt.number < 3:
        raise RuntimeError(f"attempt {ctx.attempt.number} fails")
    return {"attempt": ctx.attempt.number}


@task(id="aborter", on_failure=on_failure)
async def aborter(payload):
    raise AbortTaskRunError("stop here")


@task(id="spinner", max_duration=2, on_failure=on_failure)
async def spinner(payload):
    while True:
        pass


@task(id="sync-spinner", max_duration=2, on_failure=on_failure)
def sync_spinner(payload):
    while True:
        pass


@task(id="pid", retry={"max_attempts": 3, "min_timeout_ms": 100, "randomize": False})
async def pid(payload, ctx):
    logger.info("pid", pid=os.getpid(), attempt=ctx.attempt.number)
    if ctx.attempt.number == 1:
        await asyncio.sleep(30)
    return {"attempt": ctx.attempt.number}


@task(id="echo", on_start=on_start, on_success=on_success, on_cancel=on_cancel)
async def echo(payload, ctx):
    return payload


@task(id="run-context")
async def run_context(payload, ctx):
    """What a run knows of itself: the metadata and tags it was triggered with."""
    return {"metadata": ctx.run.metadata, "tags": ctx.run.tags, "attempt": ctx.attempt.number}


class Video(BaseModel):
    video_url: str
    format: Literal["mp4", "webm"] = "mp4"


@schema_task(id="video", schema=Video)
async def video(payload: Video):
    return {"url": payload.video_url, "format": payload.format}


@task(id="blocker", on_cancel=on_cancel)
async def blocker(payload):
    await asyncio.sleep(60)


@task(id="chatty")
def chatty(payload):
    print("from print")
    logging.getLogger("app").warning("from logging")
    logger.info("from logger", k=1)
    return "ok"


@task(id="sync-sleep")
def sync_sleep(payload):
    time.sleep(1.0)
    return time.time()


@task(id="hog", machine="micro", retry={"max_attempts": 1}, on_failure=on_failure)
def hog(payload):
    data = bytearray(600 * 1024 * 1024)
    time.sleep(3)
    return len(data)


@task(id="parent")
async def parent(payload):
    handle = await echo.trigger({"from": "parent"}, tags=["child"])
    return {"child": handle.id}


@task(id="retry-block")
async def retry_block(payload):
    calls = []

    async def sometimes():
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("not yet")
        return len(calls)

    return await retry.on_throw(sometimes, max_attempts=5, min_timeout_ms=10, randomize=False)


@task(id="expiring", queue=queue("parked"), on_failure=on_failure)
async def expiring(payload):
    return "never runs: its queue is paused in the test"


@task(id="big-output", queue=queue("big", concurrency_limit=10))
async def big_output(payload):
    await asyncio.sleep(payload.get("sleep", 0))
    return {"blob": "x" * payload["size"], "echo": len(payload.get("blob", ""))}
