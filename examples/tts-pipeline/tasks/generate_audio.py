"""`generate-audio`: the orchestrator. Cut the story into chunks, speak them in parallel with
`tts-chunk` (waiting durably: no slot or process held meanwhile), merge the MP3s, upload the result,
remove the temporary chunks and mark the job SUCCEEDED. `on_failure` marks it FAILED.

Replay-safe: chunking is a pure function of the payload, the fan-out is journaled, and every
side effect after it is a `step.run`, so a retry or a resume never speaks a chunk twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field
from tasks.tts_chunk import Chunk, tts_chunk
from tts_pipeline import audio_files
from tts_pipeline.chunking import chunk_text
from tts_pipeline.jobs import JobStore
from tts_pipeline.settings import jobs_database
from tts_pipeline.storage import storage_from_env

from conveyor import AbortTaskRunError, Context, logger, schema_task, step


class GenerateAudio(BaseModel):
    job_id: str
    story_id: str
    text: str = Field(min_length=1)
    voice: str = "alloy"


async def mark_failed(payload: GenerateAudio, error: Any, ctx: Context) -> None:
    """on_failure: the job's chunks are removed, then the job is FAILED with the run's error
    (in that order, so a job that has ended has nothing left behind)."""
    try:
        removed = await asyncio.to_thread(
            audio_files.remove_chunks, storage_from_env(), payload.job_id
        )
    except Exception as exc:  # the job must still end FAILED; leftovers are only disk space
        logger.warn("could not remove the chunks", job=payload.job_id, error=repr(exc))
        removed = 0
    JobStore(jobs_database()).fail(payload.job_id, error.message)
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


def _mark_succeeded(job_id: str, audio: dict[str, Any]) -> bool:
    return JobStore(jobs_database()).succeed(
        job_id, audio_url=audio["url"], audio_key=audio["key"], audio_bytes=audio["bytes"]
    )


@schema_task(id="generate-audio", schema=GenerateAudio, max_duration=300, on_failure=mark_failed)
async def generate_audio(payload: GenerateAudio, ctx: Context) -> dict:
    chunks = chunk_text(payload.text)
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
        # Not retried: a retry would get the same failed chunks back from the journal.
        raise AbortTaskRunError(
            f"{len(failed)} of {len(chunks)} chunks failed (chunk {index}: {reason})"
        )
    keys = [r.output["key"] for r in results.runs]
    audio = await step.run("assemble", _assemble, payload.job_id, keys)
    removed = await step.run("remove-chunks", _remove_chunks, payload.job_id)
    await step.run("mark-succeeded", _mark_succeeded, payload.job_id, audio)
    logger.info(
        "audio ready",
        job=payload.job_id,
        url=audio["url"],
        bytes=audio["bytes"],
        seconds=audio["seconds"],
        chunks_removed=removed,
    )
    return {**audio, "chunks": len(chunks)}
