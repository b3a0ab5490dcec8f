"""Tasks of the realtime benchmark (bench/realtime.py).

`ticker` sets the metadata key `tick` to {"i", "at"} `n` times, `interval` seconds apart: `at` is
the run's own wall clock at the update, which a subscriber's latency is measured from.
`streamer` pipes `n` chunks of a few tokens of text (20-50 bytes) `interval` seconds apart into
the stream `llm`, each starting with its send time.

Both start at `start` (a shared wall-clock time, so every run ticks inside the measured window)
plus `phase` (spread over one interval, so N runs do not tick in lockstep), and sleep until the
next multiple of `interval` from there rather than `interval` itself, so the rate does not drift
with the time each step takes (update `i` is due at `start + phase + i * interval`).
"""

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from conveyor import metadata, streams, task

WORDS = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "on", "by"]


async def _until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


@task(id="ticker")
async def ticker(payload: dict[str, Any]) -> dict[str, float]:
    first = payload.get("start", 0.0) + payload.get("phase", 0.0)
    await _until(first)
    for i in range(payload["n"]):
        metadata.set("tick", {"i": i, "at": time.time()})
        await _until(first + (i + 1) * payload["interval"])
    return {"n": payload["n"], "first": first, "last": time.time()}


@task(id="streamer")
async def streamer(payload: dict[str, Any]) -> dict[str, float]:
    first = payload.get("start", 0.0) + payload.get("phase", 0.0)
    await _until(first)
    rng = random.Random(payload.get("seed", 0))

    async def tokens() -> AsyncIterator[str]:
        for i in range(payload["n"]):
            # "<at> <i> " then 2-5 short words: 20-50 bytes, a few tokens of an LLM's answer
            yield f"{time.time():.6f} {i} " + " ".join(rng.choices(WORDS, k=rng.randint(2, 5)))
            await _until(first + (i + 1) * payload["interval"])

    chunks = await streams.pipe("llm", tokens())
    return {"n": len(chunks), "first": first, "last": time.time()}
