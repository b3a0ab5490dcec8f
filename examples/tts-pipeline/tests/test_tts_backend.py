"""The GraphQL backend starts one job per story at a time and answers at once; a job left RUNNING
for 10 minutes is stale and gives way to a new one. Conveyor is replaced by a recorder here; the
pipeline tests use the real one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tts_pipeline.backend.app import create_app
from tts_pipeline.jobs import STALE_AFTER, Job, JobStore
from tts_pipeline.storage import LocalStorage
from tts_testing import graphql, graphql_errors

GENERATE = """mutation($storyId: String!, $text: String!, $voice: String!) {
  generateAudio(storyId: $storyId, text: $text, voice: $voice) {
    jobId status alreadyInProgress message replacedStaleJobId } }"""
JOB = """query($id: ID!) { generationJob(id: $id) {
  id storyId voice status textChars runId audioUrl audioKey audioBytes error createdAt
  completedAt } }"""


@dataclass
class Clock:
    now: float = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """Stands in for the Conveyor trigger: records each job it is asked to start."""

    started: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def __call__(self, job: Job, text: str) -> str:
        if self.fail_with:
            raise self.fail_with
        self.started.append((job.id, text))
        return f"run_{len(self.started)}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def jobs(tmp_path: Path, clock: Clock) -> JobStore:
    return JobStore(tmp_path / "jobs.db", clock=clock)


@pytest.fixture
def api(jobs: JobStore, recorder: Recorder, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(jobs=jobs, start_run=recorder, storage=LocalStorage(tmp_path / "storage"))
    with TestClient(app) as client:
        yield client


def generate(
    api: TestClient, story: str = "story-1", text: str = "Once upon a time.", voice: str = "alloy"
) -> dict:
    return graphql(api, GENERATE, storyId=story, text=text, voice=voice)["generateAudio"]


def test_generate_audio_creates_a_running_job_triggers_the_orchestrator_and_returns_its_id(
    api: TestClient, recorder: Recorder
) -> None:
    answer = generate(api, text="Once upon a time. The end.", voice="nova")
    assert (
        answer["status"] == "RUNNING"
        and answer["message"] == "Started"
        and not answer["alreadyInProgress"]
    )
    assert recorder.started == [(answer["jobId"], "Once upon a time. The end.")]
    job = graphql(api, JOB, id=answer["jobId"])["generationJob"]
    assert job["status"] == "RUNNING" and job["storyId"] == "story-1" and job["voice"] == "nova"
    assert job["textChars"] == 26 and job["runId"] == "run_1" and job["audioUrl"] is None


def test_a_running_job_younger_than_10_minutes_is_already_in_progress(
    api: TestClient, recorder: Recorder, clock: Clock
) -> None:
    first = generate(api)
    clock.now += STALE_AFTER - 1
    again = generate(api, text="A different text.")
    assert again == {
        "jobId": first["jobId"],
        "status": "RUNNING",
        "alreadyInProgress": True,
        "message": "Already in progress",
        "replacedStaleJobId": None,
    }
    assert len(recorder.started) == 1


def test_a_running_job_10_minutes_old_is_marked_failed_before_a_new_one_starts(
    api: TestClient, recorder: Recorder, clock: Clock
) -> None:
    first = generate(api)
    clock.now += STALE_AFTER
    second = generate(api)
    assert second["jobId"] != first["jobId"] and not second["alreadyInProgress"]
    assert second["replacedStaleJobId"] == first["jobId"] and second["message"] == "Started"
    stale = graphql(api, JOB, id=first["jobId"])["generationJob"]
    assert stale["status"] == "FAILED" and stale["error"].startswith(
        "stale: still RUNNING after 10 minutes"
    )
    assert stale["completedAt"] is not None
    assert graphql(api, JOB, id=second["jobId"])["generationJob"]["status"] == "RUNNING"
    assert [job_id for job_id, _ in recorder.started] == [first["jobId"], second["jobId"]]


def test_ended_jobs_and_other_stories_do_not_block_a_new_job(
    api: TestClient, jobs: JobStore
) -> None:
    first = generate(api, story="story-1")
    assert not generate(api, story="story-2")["alreadyInProgress"]
    jobs.succeed(
        first["jobId"], audio_url="http://x/a.mp3", audio_key="audio/a.mp3", audio_bytes=10
    )
    assert not generate(api, story="story-1")["alreadyInProgress"]


def test_a_job_ends_once(jobs: JobStore) -> None:
    job = jobs.start("story-1", "alloy", 10).job
    assert jobs.fail(job.id, "boom")
    assert not jobs.succeed(job.id, audio_url="u", audio_key="k", audio_bytes=1)
    assert not jobs.fail(job.id, "again")
    ended = jobs.get(job.id)
    assert ended is not None and ended.status == "FAILED" and ended.error == "boom"


def test_a_job_that_cannot_be_triggered_is_failed_and_the_error_says_so(
    api: TestClient, recorder: Recorder, jobs: JobStore
) -> None:
    recorder.fail_with = ConnectionError("Conveyor is not answering")
    errors = graphql_errors(api, GENERATE, storyId="story-1", text="Hello.", voice="alloy")
    assert len(errors) == 1 and "could not start the generation" in errors[0]
    assert "Conveyor is not answering" in errors[0]
    # The failed job does not block the next attempt.
    recorder.fail_with = None
    assert generate(api)["message"] == "Started"


@pytest.mark.parametrize(
    ("story", "text", "voice", "message"),
    [
        ("story 1", "Hello.", "alloy", "storyId must be"),
        ("story-1", "   ", "alloy", "text is empty"),
        ("story-1", "x" * 200_001, "alloy", "at most 200,000"),
        ("story-1", "Hello.", "robot", "unknown voice 'robot'"),
    ],
)
def test_bad_input_is_a_graphql_error_and_starts_nothing(
    api: TestClient, recorder: Recorder, story: str, text: str, voice: str, message: str
) -> None:
    errors = graphql_errors(api, GENERATE, storyId=story, text=text, voice=voice)
    assert len(errors) == 1 and message in errors[0]
    assert recorder.started == []


def test_an_unknown_job_is_null(api: TestClient) -> None:
    assert graphql(api, JOB, id="job_nope")["generationJob"] is None


def test_local_audio_is_served_under_media(api: TestClient, tmp_path: Path) -> None:
    LocalStorage(tmp_path / "storage").put("audio/job_1.mp3", b"ID3 bytes")
    response = api.get("/media/audio/job_1.mp3")
    assert response.status_code == 200 and response.content == b"ID3 bytes"
    assert api.get("/healthz").json() == {"status": "ok"}
