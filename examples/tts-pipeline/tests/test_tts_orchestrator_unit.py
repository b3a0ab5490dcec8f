"""The orchestrator's logic without a platform, a speech engine or a network: `testing.run` runs
`generate-audio` in this process with `tts-chunk` mocked. The mock writes a short MP3 where the real
chunk task would upload one, so the real merge, upload and clean-up run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tasks.generate_audio import generate_audio
from tasks.tts_chunk import tts_chunk
from tts_pipeline.audio_files import audio_key, chunk_key
from tts_pipeline.storage import LocalStorage
from tts_testing import player_info, story, tagged_tone

from conveyor import AbortTaskRunError, RunStatus, testing


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The storage of the tasks, in a folder of this test."""
    for name in ("TTS_S3_BUCKET", "TTS_STORAGE_DIR", "TTS_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TTS_PUBLIC_BASE_URL", "http://testserver/media")
    return tmp_path


def spoken_chunk(storage: LocalStorage) -> Any:
    """A stand-in for `tts-chunk`: one second of tone per chunk, stored where the task stores it."""

    def speak(payload: dict[str, Any]) -> dict[str, Any]:
        key = chunk_key(payload["job_id"], payload["index"])
        audio = tagged_tone(1.0)
        storage.put(key, audio, "audio/mpeg")
        return {"key": key, "bytes": len(audio), "seconds": 1.0, "provider": "test"}

    return speak


def test_the_chunks_are_spoken_in_parallel_merged_into_one_mp3_and_the_job_succeeds(
    data: Path,
) -> None:
    storage = LocalStorage(data / "storage")
    chunks = testing.mock(tts_chunk, output=spoken_chunk(storage))

    result = testing.run_sync(
        generate_audio,
        {"job_id": "job_1", "story_id": "story-1", "text": story(9000, seed=2), "voice": "fable"},
        mocks=[chunks],
    )

    assert result.ok, result.error
    n = result.output["chunks"]
    assert n > 1 and len(chunks.calls) == n
    assert [c["index"] for c in chunks.calls] == list(range(n))
    assert all(c.tags == ["job:job_1"] for c in result.children)
    seconds, _ = player_info(storage.get(audio_key("job_1")))
    assert abs(seconds - n) < 0.5
    assert result.output["url"] == "http://testserver/media/audio/job_1.mp3"
    assert [e.key for e in result.journal] == [
        "batch_trigger_and_wait:tts-chunk#1",
        "step:assemble#1",
        "step:remove-chunks#1",
    ]
    assert storage.list("tmp/") == []
    assert result.messages() == ["speaking the story", "audio ready"]


def test_a_chunk_no_retry_can_fix_fails_the_job_once_without_retrying_the_story(
    data: Path,
) -> None:
    storage = LocalStorage(data / "storage")
    storage.put(chunk_key("job_2", 0), tagged_tone(0.5), "audio/mpeg")  # a chunk spoken before
    bad_voice = AbortTaskRunError("the voice 'fable' is not available")  # as tts-chunk raises it
    result = testing.run_sync(
        generate_audio,
        {"job_id": "job_2", "story_id": "story-2", "text": "A short story.", "voice": "fable"},
        mocks=[testing.mock(tts_chunk, error=bad_voice)],
    )

    assert result.status == RunStatus.FAILED and result.attempts == 1
    assert "1 of 1 chunks failed" in result.error["message"]
    assert "not available" in result.error["message"]
    # the chunks are removed before the run ends, so a failed job leaves nothing behind
    assert [e.key for e in result.journal] == [
        "batch_trigger_and_wait:tts-chunk#1",
        "step:remove-chunks#1",
    ]
    assert storage.list("tmp/") == []
    assert "audio generation failed" in result.messages("error")  # on_failure


def test_a_retry_of_the_story_speaks_again_only_the_chunk_that_failed(data: Path) -> None:
    """A chunk that still failed after its own retries fails the story's attempt; the story's
    retry triggers that chunk again (the journal keeps the chunks spoken)."""
    chunk = testing.mock(tts_chunk, error="the provider is overloaded")
    result = testing.run_sync(
        generate_audio,
        {"job_id": "job_3", "story_id": "story-3", "text": "A short story.", "voice": "alloy"},
        mocks=[chunk],
    )
    assert result.status == RunStatus.FAILED and result.attempts == 3
    assert len(chunk.calls) == 3  # once per attempt of the story: triggered again each time
    assert "1 of 1 chunks failed" in result.error["message"]
    assert "audio generation failed" in result.messages("error")  # on_failure cleans up
