"""A task whose every visible value is what the caller sent: the dashboard must show it as text."""

from conveyor import AbortTaskRunError, logger, step, task


@task(id="hostile")
async def hostile(payload):
    text = payload["text"]
    logger.info(text, **{"attr": text, "nested": {"inner": text}})
    logger.info("umlaut", word="Über")
    await step.run(f"step {text}", lambda: text)
    if payload.get("fail"):
        raise AbortTaskRunError(text)
    return {"output": text}
