"""The whole pipeline on a real `conveyor dev`: the GraphQL backend starts a job, the orchestrator
fans out to the chunk task (at most 5 at once), merges one valid MP3 and cleans up; failed chunks
are retried, and a chunk that never succeeds fails the job with nothing left behind. Each job is
followed as the page follows it: live from Conveyor, with the token the backend handed out.

espeak-ng speaks for real; chunks fail on purpose through the test-only markers of
tts_pipeline/faults.py (TTS_TEST_FAULTS=1 is set for this platform only).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tts_pipeline import mp3
from tts_pipeline.storage import LocalStorage
from tts_testing import Platform, graphql, player_info, story

from conveyor import Client, Run

GENERATE = """mutation($storyId: String!, $text: String!) {
  generateAudio(storyId: $storyId, text: $text, voice: "fable") {
    jobId runId accessToken status message } }"""
JOB = """query($id: ID!) { generationJob(id: $id) {
  id status runId chunksDone chunksTotal audioUrl audioKey audioBytes error } }"""


def start(backend: Any, story_id: str, text: str) -> dict[str, Any]:
    """The backend's answer: the job, its run, and the token reading that run."""
    answer = graphql(backend, GENERATE, storyId=story_id, text=text)["generateAudio"]
    assert answer["status"] == "RUNNING" and answer["message"] == "Started"
    return dict(answer)


def follow(platform: Platform, started: dict[str, Any]) -> list[Run]:
    """What the page sees: every snapshot of the job's run until it has ended, live from
    Conveyor, read with the public token the backend handed out (no secret key)."""
    with Client(api_url=platform.api_url, secret_key=started["accessToken"]) as page:
        return list(page.runs.subscribe(started["runId"]))


def wait_until_ended(backend: Any, platform: Platform, started: dict[str, Any]) -> dict[str, Any]:
    """Follow the job's run to its end, then the job as GraphQL answers for it."""
    seen = follow(platform, started)
    assert seen[-1].status.is_final
    done = [run.metadata.get("done", 0) for run in seen]
    assert done == sorted(done)  # progress only goes forward
    job = dict(graphql(backend, JOB, id=started["jobId"])["generationJob"])
    assert job["status"] != "RUNNING"
    return job


def chunk_runs(client: Client, job_id: str) -> list[Run]:
    page = client.runs.list(task="tts-chunk", tag=f"job:{job_id}", limit=100)
    return [client.runs.retrieve(run.id) for run in page.data]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once (an end at the same instant as a start comes first)."""
    edges = sorted([(begin, 1) for begin, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


@pytest.fixture(scope="module")
def client(platform: Platform) -> Any:
    with Client(api_url=platform.api_url, secret_key=platform.secret_key) as c:
        yield c


@pytest.fixture(scope="module")
def storage(platform: Platform) -> LocalStorage:
    return LocalStorage(platform.data / "storage")


def test_a_story_of_10000_characters_becomes_one_valid_mp3(
    backend: Any, platform: Platform, client: Client, storage: LocalStorage
) -> None:
    text = story(10_500, seed=1)
    began = time.monotonic()
    started = start(backend, "story-long", text)
    job_id = started["jobId"]
    job = wait_until_ended(backend, platform, started)
    took = time.monotonic() - began
    assert job["status"] == "SUCCEEDED", job["error"]
    assert job["chunksDone"] == job["chunksTotal"] == 3
    assert (
        job["audioKey"] == f"audio/{job_id}.mp3"
        and job["audioUrl"] == f"http://testserver/media/audio/{job_id}.mp3"
    )

    audio = backend.get(
        f"/media/audio/{job_id}.mp3"
    ).content  # the URL the client gets, served by the backend
    assert len(audio) == job["audioBytes"] == len(storage.get(job["audioKey"]))
    frames = mp3.frames(audio)  # strict: one ID3v2 tag, then nothing but frames to the end
    assert audio.startswith(b"ID3") and audio.count(b"ID3") == 1 and not mp3.has_id3v1(audio)
    assert {f.sample_rate for f in frames} == {22050}

    chunks = chunk_runs(client, job_id)
    assert len(chunks) == 3 and all(run.status == "COMPLETED" for run in chunks)
    assert all(run.parent_id == job["runId"] for run in chunks)
    chunk_seconds = sum(run.output["seconds"] for run in chunks)
    assert mp3.duration(audio) == pytest.approx(chunk_seconds, abs=0.05)
    assert player_info(audio)[0] == pytest.approx(chunk_seconds, abs=0.1)  # a player agrees
    assert 400 < chunk_seconds < 1500  # ~1,800 words of speech

    assert storage.list("tmp/") == []  # the temporary chunks are gone
    orchestrator = client.runs.retrieve(job["runId"])
    assert orchestrator.status == "COMPLETED" and orchestrator.output["chunks"] == 3
    assert took < 60


def test_never_more_than_5_chunks_are_spoken_at_once(
    backend: Any, platform: Platform, client: Client, storage: LocalStorage
) -> None:
    jobs = [start(backend, f"story-busy-{n}", story(10_500, seed=10 + n)) for n in range(3)]
    ended = [wait_until_ended(backend, platform, started) for started in jobs]
    assert [job["status"] for job in ended] == ["SUCCEEDED"] * 3
    runs = [run for job in ended for run in chunk_runs(client, job["id"])]
    assert len(runs) == 9
    attempts = [
        (a.started_at.timestamp(), a.completed_at.timestamp())
        for run in runs
        for a in run.attempt_list or []
    ]
    spans = [
        (run.started_at.timestamp(), run.completed_at.timestamp())
        for run in runs
        if run.started_at and run.completed_at
    ]
    assert len(attempts) == len(spans) == 9
    assert peak_overlap(attempts) == 5  # the queue's limit is reached, never passed
    assert peak_overlap(spans) == 5
    for job in ended:
        mp3.frames(storage.get(job["audioKey"]))
    assert storage.list("tmp/") == []


def test_a_chunk_that_fails_twice_is_retried_and_the_job_succeeds(
    backend: Any, platform: Platform, client: Client
) -> None:
    text = (
        "The keeper woke before dawn. [[fail-attempts:2]] He climbed the stairs and lit the lamp."
    )
    job = wait_until_ended(backend, platform, start(backend, "story-flaky", text))
    assert job["status"] == "SUCCEEDED", job["error"]
    [run] = chunk_runs(client, job["id"])
    assert run.status == "COMPLETED" and run.attempts == 3
    assert job["chunksDone"] == job["chunksTotal"] == 1  # the failed tries did not count
    assert [a.status for a in run.attempt_list or []] == ["FAILED", "FAILED", "COMPLETED"]
    first = (run.attempt_list or [])[0]
    assert first.error is not None and "injected failure on attempt 1" in first.error.message


def test_a_chunk_that_always_fails_fails_the_job_with_nothing_left_behind(
    backend: Any, platform: Platform, client: Client, storage: LocalStorage
) -> None:
    text = story(4_500, seed=3) + " [[fail-attempts:always]] The end."
    job = wait_until_ended(backend, platform, start(backend, "story-broken", text))
    assert job["status"] == "FAILED" and job["audioUrl"] is None
    assert (job["chunksDone"], job["chunksTotal"]) == (1, 2)
    assert job["error"].startswith("1 of 2 chunks failed (chunk 1: injected failure on attempt 3")
    runs = sorted(chunk_runs(client, job["id"]), key=lambda r: (r.payload["index"], r.id))
    # each retry of the story spoke again the chunk that failed, never the one that was spoken
    assert [(r.payload["index"], r.status, r.attempts) for r in runs] == [
        (0, "COMPLETED", 1),
        (1, "FAILED", 3),
        (1, "FAILED", 3),
        (1, "FAILED", 3),
    ]
    orchestrator = client.runs.retrieve(job["runId"])
    assert orchestrator.status == "FAILED" and orchestrator.attempts == 3
    assert storage.list("tmp/") == []  # on_failure removed the chunk that was spoken
