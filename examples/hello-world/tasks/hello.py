"""The basics: an async task that logs and reads its context, and a plain sync task."""

from conveyor import logger, task


@task(id="hello-world")
async def hello_world(payload: dict, ctx) -> dict:
    """Greet someone. Try: conveyor trigger hello-world --payload '{"name": "Ada"}' --wait"""
    name = payload.get("name", "world")
    logger.info("saying hello", name=name, run_id=ctx.run.id, attempt=ctx.attempt.number)
    return {"message": f"Hello, {name}!", "environment": ctx.environment, "tags": ctx.run.tags}


@task(id="word-count", max_duration=30)
def word_count(payload: dict) -> dict:
    """A plain `def` task runs too (it just cannot use durable waits)."""
    text = str(payload.get("text", ""))
    words = text.split()
    logger.info("counted words", words=len(words))
    return {"words": len(words), "characters": len(text)}
