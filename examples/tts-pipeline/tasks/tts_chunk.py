"""`tts-chunk`: one TTS call for one chunk of a story, uploaded to object storage.

At most 5 run at once (the `tts-chunks` queue), which is how you stay under a TTS provider's
rate limit however many stories are being generated. A failed call is retried twice, 1 to 15 s
apart; an error that a retry cannot fix (a bad voice, a wrong key) fails the chunk at once.
A spoken chunk adds one to its orchestrator's `done`, the progress the page shows.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from pydantic import BaseModel, Field
from tts_pipeline import faults, mp3
from tts_pipeline.audio_files import chunk_key
from tts_pipeline.chunking import MAX_CHUNK_CHARS
from tts_pipeline.speech import SpeechError, provider_from_env
from tts_pipeline.storage import storage_from_env

from conveyor import AbortTaskRunError, Context, logger, metadata, queue, schema_task

tts_chunks = queue("tts-chunks", concurrency_limit=5)


class Chunk(BaseModel):
    job_id: str
    index: int = Field(ge=0)
    text: str = Field(min_length=1, max_length=MAX_CHUNK_CHARS)
    voice: str


class SpokenChunk(TypedDict):
    """What a chunk run returns, as the orchestrator reads it from its results."""

    key: str
    bytes: int
    seconds: float
    provider: str


@schema_task(
    id="tts-chunk",
    schema=Chunk,
    queue=tts_chunks,
    max_duration=120,
    retry={"max_attempts": 3, "factor": 2, "min_timeout_ms": 1000, "max_timeout_ms": 15_000},
)
async def tts_chunk(payload: Chunk, ctx: Context) -> SpokenChunk:
    text = faults.apply(payload.text, ctx.attempt.number)  # test-only, see tts_pipeline/faults.py
    provider = provider_from_env()
    try:
        audio = await provider.synthesize(text, payload.voice)
    except SpeechError as exc:
        if not exc.retryable:
            raise AbortTaskRunError(str(exc)) from exc
        raise
    seconds = mp3.duration(audio)  # also proves the provider sent MP3 frames
    key = chunk_key(payload.job_id, payload.index)
    await asyncio.to_thread(storage_from_env().put, key, audio, "audio/mpeg")
    logger.info(
        "chunk spoken",
        job=payload.job_id,
        index=payload.index,
        chars=len(text),
        seconds=round(seconds, 2),
        provider=provider.name,
    )
    metadata.parent.increment("done", 1)  # last, once nothing can fail: a failed try never counts
    return {
        "key": key,
        "bytes": len(audio),
        "seconds": round(seconds, 3),
        "provider": provider.name,
    }
