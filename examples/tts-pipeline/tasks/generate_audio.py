"""`generate-audio`: the orchestrator. Cut the story into chunks, speak them in parallel with
`tts-chunk` (waiting durably: no slot or process held meanwhile), merge the MP3s, upload the result
and remove the temporary chunks. Its output (the audio's URL) is what the page shows at the end.

Progress is the run's metadata, which the page follows live: `total` (the number of chunks),
`done` (each chunk adds one to its parent's when it is spoken) and `stage` (speaking, merging).

Replay-safe: chunking is a pure function of the payload, the fan-out is journaled, and every
side effect after it is a `step.run`, so a resume never speaks a chunk twice and a retry speaks
again only the chunks that failed; metadata changes made again by a replay are applied once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field
from tasks.tts_chunk import Chunk, tts_chunk
from tts_pipeline import audio_files
from tts_pipeline.chunking import chunk_text
from tts_pipeline.storage import storage_from_env

from conveyor import AbortTaskRunError, Context, logger, metadata, schema_task, step


class GenerateAudio(BaseModel):
    job_id: str
    story_id: str
    text: str = Field(min_length=1)
    voice: str = "alloy"


async def clean_up(payload: GenerateAudio, error: Any, ctx: Context) -> None:
    """on_failure: remove the chunks the run left behind (chunks that still failed after its
    last attempt, a timeout, a crash). A chunk no retry can fix is cleaned up before the run
    ends."""
    try:
        removed = await asyncio.to_thread(
            audio_files.remove_chunks, storage_from_env(), payload.job_id
        )
    except Exception as exc:  # leftovers are only disk space
        logger.warn("could not remove the chunks", job=payload.job_id, error=repr(exc))
        removed = 0
    logger.error(
        "audio generation failed",
        job=payload.job_id,
        status=error.status,
        error=error.message,
        chunks_removed=removed,
    )


async def _assemble(job_id: str, keys: list[str]) -> dict[str, Any]:
    return await asyncio.to_thread(audio_files.assemble, storage_from_env(), job_id, keys)


async def _remove_chunks(job_id: str) -> int:
    return await asyncio.to_thread(audio_files.remove_chunks, storage_from_env(), job_id)


@schema_task(id="generate-audio", schema=GenerateAudio, max_duration=300, on_failure=clean_up)
async def generate_audio(payload: GenerateAudio, ctx: Context) -> dict:
    chunks = chunk_text(payload.text)
    metadata.set("total", len(chunks))
    metadata.set("stage", "speaking")
    logger.info(
        "speaking the story", job=payload.job_id, chars=len(payload.text), chunks=len(chunks)
    )
    results = await tts_chunk.batch_trigger_and_wait(
        [
            {
                "payload": Chunk(job_id=payload.job_id, index=i, text=text, voice=payload.voice),
                "options": {"tags": [f"job:{payload.job_id}"]},
            }
            for i, text in enumerate(chunks)
        ]
    )
    failed = [(i, r) for i, r in enumerate(results.runs) if not r.ok]
    if failed:
        index, first = failed[0]
        reason = (first.error or {}).get("message", "failed")
        message = f"{len(failed)} of {len(chunks)} chunks failed (chunk {index}: {reason})"
        if all((r.error or {}).get("name") != "AbortTaskRunError" for _, r in failed):
            # a retry of this run speaks again only the chunks that failed (the journal keeps
            # the spoken ones); after the last attempt, on_failure removes the chunks
            raise RuntimeError(message)
        # a retry cannot fix a bad voice or key: remove the chunks before the run ends, so a
        # job seen as failed has nothing left behind
        await step.run("remove-chunks", _remove_chunks, payload.job_id)
        raise AbortTaskRunError(message)
    keys = [r.output["key"] for r in results.runs]
    metadata.set("stage", "merging")
    audio = await step.run("assemble", _assemble, payload.job_id, keys)
    removed = await step.run("remove-chunks", _remove_chunks, payload.job_id)
    logger.info(
        "audio ready",
        job=payload.job_id,
        url=audio["url"],
        bytes=audio["bytes"],
        seconds=audio["seconds"],
        chunks_removed=removed,
    )
    return {**audio, "chunks": len(chunks)}
