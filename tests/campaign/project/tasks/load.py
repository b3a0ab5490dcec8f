"""The campaign's mixed load: queue-limited runs, steps, fan-out, waits, tokens and long runs
that the load driver cancels. Every body records itself (tasks/history.py)."""

import asyncio

from conveyor import queue, step, task, wait

from .history import Segment, hook, record

LIMITED = queue("camp-limited", concurrency_limit=3)
HOOKS = {
    "on_success": hook("on_success"),
    "on_failure": hook("on_failure"),
    "on_cancel": hook("on_cancel"),
}


@task(id="camp-limited", queue=LIMITED, **HOOKS)
async def limited(payload, ctx):
    async with Segment(ctx):
        await asyncio.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


async def run_steps(payload, ctx, prefix: str) -> dict:
    async with Segment(ctx) as seg:
        for i in range(payload["steps"]):
            await step.run(f"{prefix}{i}", seg.step(f"{prefix}{i}", payload["seconds"]))
    return {"steps": payload["steps"]}


@task(id="camp-steps", **HOOKS)
async def steps(payload, ctx):
    return await run_steps(payload, ctx, "s")


@task(id="camp-child", queue=LIMITED, **HOOKS)
async def child(payload, ctx):
    async with Segment(ctx):
        await asyncio.sleep(payload["seconds"])
    return {"child": True}


@task(id="camp-fanout", **HOOKS)
async def fanout(payload, ctx):
    async with Segment(ctx) as seg:
        async with seg.paused("children"):
            results = await child.batch_trigger_and_wait(
                [{"payload": {"seconds": s}} for s in payload["children"]]
            )
        record(
            "children",
            ctx,
            seg=seg.id,
            ok=[r.ok for r in results.runs],
            ids=[r.id for r in results.runs],
        )
    return {"children": len(results.runs)}


@task(id="camp-wait", **HOOKS)
async def waiting(payload, ctx):
    async with Segment(ctx) as seg:
        await step.run("before", seg.step("before", 0.1))
        async with seg.paused("wait"):
            await wait.for_(seconds=payload["seconds"])
        await step.run("after", seg.step("after", 0.1))
    return {"waited": payload["seconds"]}


@task(id="camp-token", **HOOKS)
async def token(payload, ctx):
    async with Segment(ctx) as seg:
        async with seg.paused("token"):
            made = await wait.create_token(timeout="30m")
            record("token", ctx, seg=seg.id, token=made.id)
            result = await wait.for_token(made)
        record("token-result", ctx, seg=seg.id, token=made.id, ok=result.ok)
    return {"token": made.id}


@task(id="camp-long", **HOOKS)
async def long(payload, ctx):
    """Many small steps: the driver cancels it while it runs."""
    return await run_steps(payload, ctx, "l")
