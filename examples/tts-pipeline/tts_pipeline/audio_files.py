"""The files of one job in object storage: where chunks and the final file go, assembling the
final file from the chunks, and removing the chunks. Called by the tasks in ../tasks/; blocking
(storage calls), so the tasks run them in a thread."""

from __future__ import annotations

from typing import Any

from tts_pipeline import mp3
from tts_pipeline.storage import ObjectStorage


def chunk_prefix(job_id: str) -> str:
    return f"tmp/{job_id}/"


def chunk_key(job_id: str, index: int) -> str:
    return f"{chunk_prefix(job_id)}chunk-{index:04d}.mp3"


def audio_key(job_id: str) -> str:
    return f"audio/{job_id}.mp3"


def assemble(storage: ObjectStorage, job_id: str, chunk_keys: list[str]) -> dict[str, Any]:
    """Download the chunks, merge them into one MP3, upload it; its key, URL, size and length."""
    merged = mp3.merge([storage.get(key) for key in chunk_keys])
    key = audio_key(job_id)
    storage.put(key, merged, "audio/mpeg")
    return {
        "key": key,
        "url": storage.url(key),
        "bytes": len(merged),
        "seconds": round(mp3.duration(merged), 3),
    }


def remove_chunks(storage: ObjectStorage, job_id: str) -> int:
    """Delete every temporary chunk of the job (also those of a job that failed); how many."""
    keys = storage.list(chunk_prefix(job_id))
    storage.delete(keys)
    return len(keys)
