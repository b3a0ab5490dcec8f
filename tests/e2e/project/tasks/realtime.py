"""Tasks of the realtime tests: metadata changed as a run goes (its own, its parent's and its
root's), tags added, a stream of chunks, and a run whose increments must count once when it is
replayed after a wait."""

import asyncio

from conveyor import metadata, streams, tags, task, wait


@task(id="progress")
async def progress(payload: dict, ctx) -> dict:
    total = int(payload.get("total", 10))
    metadata.set("total", total)
    for i in range(total):
        metadata.increment("done", 1)
        metadata.append("items", i)
        await asyncio.sleep(float(payload.get("pause", 0.05)))
    if payload.get("tag"):
        await tags.add(payload["tag"])
    return {"done": metadata.get("done"), "seen": metadata.current()}


@task(id="child-progress")
async def child_progress(payload: dict, ctx) -> None:
    metadata.parent.increment("children_done", 1)
    metadata.root.append("finished", ctx.run.id)


@task(id="fan-progress")
async def fan_progress(payload: dict, ctx) -> dict:
    metadata.set("children", int(payload["children"]))
    await child_progress.batch_trigger_and_wait(
        [{"payload": {}} for _ in range(int(payload["children"]))]
    )
    return {"ok": True}


@task(id="llm")
async def llm(payload: dict, ctx) -> dict:
    async def tokens():
        for i in range(int(payload["tokens"])):
            await asyncio.sleep(float(payload.get("pause", 0.01)))
            yield f"t{i} "
            if i == payload.get("think_after"):  # a model calling a tool, say
                await asyncio.sleep(float(payload["think"]))

    chunks = await streams.pipe("llm", tokens())
    return {"text": "".join(chunks)}


@task(id="count-once")
async def count_once(payload: dict, ctx) -> dict:
    metadata.increment("count", 1)
    metadata.append("marks", "before")
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    await metadata.flush()
    await wait.for_token(token)  # the run is suspended here, then replayed from the top
    metadata.increment("count", 1)
    metadata.append("marks", "after")
    return {"count": metadata.get("count"), "marks": metadata.get("marks")}


@task(id="metadata-in-steps")
async def metadata_in_steps(payload: dict, ctx) -> dict:
    from conveyor import step

    def charge() -> str:
        metadata.increment("charged", 1)  # inside a step: not made again when journaled
        return "ok"

    await step.run("charge", charge)
    metadata.root.set("root_is_self", True)  # a run nothing triggered is its own root
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    await wait.for_token(token)  # suspended, then replayed: the step answers from the journal
    metadata.set("after", 1)
    metadata.increment("charged", 10)
    return {"seen": metadata.current()}


@task(id="count-to", retry={"max_attempts": 10, "min_timeout_ms": 100, "randomize": False})
async def count_to(payload: dict, ctx) -> dict:
    """Counts to `n` in its metadata, one increment every 50 ms (killed on the way, its retry
    counts again from the top: the increments its attempts made count once)."""
    for _ in range(int(payload["n"])):
        metadata.increment("count", 1)
        await asyncio.sleep(0.05)
    await metadata.flush()
    return {"count": metadata.get("count"), "attempt": ctx.attempt.number}
