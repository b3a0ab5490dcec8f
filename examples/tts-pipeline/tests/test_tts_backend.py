"""The GraphQL backend starts one job per story at a time and answers at once with the job's run
and a token reading it; a job is in progress for as long as its run has not ended, whatever its
age, and GraphQL reads a job's status, progress, audio and error from its run. Conveyor is
replaced by a stand-in here; the pipeline tests use the real one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tts_pipeline.backend.app import create_app
from tts_pipeline.jobs import Job, JobStore
from tts_pipeline.storage import LocalStorage
from tts_testing import graphql, graphql_errors

from conveyor import Run, RunStatus

GENERATE = """mutation($storyId: String!, $text: String!, $voice: String!) {
  generateAudio(storyId: $storyId, text: $text, voice: $voice) {
    jobId runId status alreadyInProgress message accessToken } }"""
JOB = """query($id: ID!) { generationJob(id: $id) {
  id storyId voice status textChars runId chunksDone chunksTotal audioUrl audioKey audioBytes
  error createdAt completedAt accessToken } }"""


@dataclass
class Conveyor:
    """Stands in for the backend's Conveyor: records each job it is asked to start and keeps its
    run, which a test moves along."""

    browser_url: str = "http://conveyor.test:3030"
    started: list[tuple[str, str]] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    fail_with: Exception | None = None
    trigger_delay: float = 0.0

    def trigger(self, job: Job, text: str) -> str:
        if self.fail_with:
            raise self.fail_with
        time.sleep(self.trigger_delay)
        self.started.append((job.id, text))
        run_id = f"run_{len(self.started)}"
        now = datetime.now(UTC)
        self.runs[run_id] = Run(
            id=run_id, task_id="generate-audio", status=RunStatus.QUEUED, created_at=now
        )
        return run_id

    def running(self, run_id: str) -> bool:
        return not self.runs[run_id].status.is_final

    def retrieve(self, run_id: str) -> Run:
        return self.runs[run_id]

    def page_token(self, run_id: str) -> str:
        return f"token-reading-{run_id}"

    def move(self, run_id: str, status: RunStatus, **changes: Any) -> None:
        if status.is_final:
            changes.setdefault("completed_at", datetime.now(UTC))
        self.runs[run_id] = Run.model_validate(
            {**self.runs[run_id].model_dump(), "status": status, **changes}
        )


@pytest.fixture
def conveyor() -> Conveyor:
    return Conveyor()


@pytest.fixture
def jobs(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


@pytest.fixture
def api(jobs: JobStore, conveyor: Conveyor, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(jobs=jobs, runs=conveyor, storage=LocalStorage(tmp_path / "storage"))
    with TestClient(app) as client:
        yield client


def generate(
    api: TestClient, story: str = "story-1", text: str = "Once upon a time.", voice: str = "alloy"
) -> dict:
    return graphql(api, GENERATE, storyId=story, text=text, voice=voice)["generateAudio"]


def test_generate_audio_triggers_the_orchestrator_and_answers_with_the_run_and_its_token(
    api: TestClient, conveyor: Conveyor
) -> None:
    answer = generate(api, text="Once upon a time. The end.", voice="nova")
    assert answer["status"] == "RUNNING" and answer["message"] == "Started"
    assert not answer["alreadyInProgress"]
    assert answer["runId"] == "run_1" and answer["accessToken"] == "token-reading-run_1"
    assert conveyor.started == [(answer["jobId"], "Once upon a time. The end.")]
    job = graphql(api, JOB, id=answer["jobId"])["generationJob"]
    assert job["status"] == "RUNNING" and job["storyId"] == "story-1" and job["voice"] == "nova"
    assert job["textChars"] == 26 and job["runId"] == "run_1" and job["audioUrl"] is None
    assert job["chunksDone"] == 0 and job["chunksTotal"] is None
    assert job["accessToken"] == "token-reading-run_1"


def test_a_job_whose_run_has_not_ended_is_already_in_progress_however_old(
    api: TestClient, conveyor: Conveyor, jobs: JobStore
) -> None:
    first = generate(api)
    jobs.clock = lambda: time.time() + 86_400  # a day later: age decides nothing
    conveyor.move(first["runId"], RunStatus.WAITING)
    again = generate(api, text="A different text.")
    assert again == {
        "jobId": first["jobId"],
        "runId": first["runId"],
        "status": "RUNNING",
        "alreadyInProgress": True,
        "message": "Already in progress",
        "accessToken": "token-reading-run_1",
    }
    assert len(conveyor.started) == 1


@pytest.mark.parametrize("ended", [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CRASHED])
def test_once_the_run_has_ended_the_story_gets_a_new_job(
    api: TestClient, conveyor: Conveyor, ended: RunStatus
) -> None:
    first = generate(api)
    conveyor.move(first["runId"], ended)
    second = generate(api)
    assert second["jobId"] != first["jobId"] and second["runId"] == "run_2"
    assert second["message"] == "Started" and not second["alreadyInProgress"]


def test_other_stories_do_not_block_a_new_job(api: TestClient) -> None:
    generate(api, story="story-1")
    assert not generate(api, story="story-2")["alreadyInProgress"]


def test_two_requests_at_once_for_one_story_start_one_job(
    jobs: JobStore, conveyor: Conveyor
) -> None:
    conveyor.trigger_delay = 0.2  # the second request comes while the first triggers
    answers: list[Any] = []

    def start() -> None:
        answers.append(
            jobs.start(
                "story-1",
                "alloy",
                10,
                running=conveyor.running,
                trigger=lambda job: conveyor.trigger(job, "text"),
            )
        )

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(conveyor.started) == 1
    assert sorted(started.already_running for started in answers) == [False, True]
    assert answers[0].job == answers[1].job


def test_generation_job_reads_progress_audio_and_errors_from_the_run(
    api: TestClient, conveyor: Conveyor
) -> None:
    job_id = generate(api, story="story-1")["jobId"]
    conveyor.move("run_1", RunStatus.EXECUTING, metadata={"total": 3, "done": 2})
    job = graphql(api, JOB, id=job_id)["generationJob"]
    assert (job["status"], job["chunksDone"], job["chunksTotal"]) == ("RUNNING", 2, 3)

    audio = {"url": "http://x/audio/a.mp3", "key": "audio/a.mp3", "bytes": 10, "chunks": 3}
    conveyor.move("run_1", RunStatus.COMPLETED, output=audio, metadata={"total": 3, "done": 3})
    job = graphql(api, JOB, id=job_id)["generationJob"]
    assert job["status"] == "SUCCEEDED" and job["chunksDone"] == 3 and job["error"] is None
    assert (job["audioUrl"], job["audioKey"], job["audioBytes"]) == (
        "http://x/audio/a.mp3",
        "audio/a.mp3",
        10,
    )
    assert job["completedAt"] is not None

    failed_id = generate(api, story="story-2")["jobId"]
    error = {"name": "AbortTaskRunError", "message": "1 of 2 chunks failed (chunk 1: boom)"}
    conveyor.move("run_2", RunStatus.FAILED, error=error)
    failed = graphql(api, JOB, id=failed_id)["generationJob"]
    assert failed["status"] == "FAILED" and failed["audioUrl"] is None
    assert failed["error"] == "1 of 2 chunks failed (chunk 1: boom)"

    canceled_id = generate(api, story="story-3")["jobId"]
    conveyor.move("run_3", RunStatus.CANCELED)
    canceled = graphql(api, JOB, id=canceled_id)["generationJob"]
    assert canceled["status"] == "FAILED" and canceled["error"] == "the run ended CANCELED"


def test_a_job_that_cannot_be_triggered_is_not_recorded_and_the_error_says_so(
    api: TestClient, conveyor: Conveyor
) -> None:
    conveyor.fail_with = ConnectionError("Conveyor is not answering")
    errors = graphql_errors(api, GENERATE, storyId="story-1", text="Hello.", voice="alloy")
    assert len(errors) == 1 and "could not start the generation" in errors[0]
    assert "Conveyor is not answering" in errors[0]
    # Nothing blocks the next attempt.
    conveyor.fail_with = None
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
    api: TestClient, conveyor: Conveyor, story: str, text: str, voice: str, message: str
) -> None:
    errors = graphql_errors(api, GENERATE, storyId=story, text=text, voice=voice)
    assert len(errors) == 1 and message in errors[0]
    assert conveyor.started == []


def test_an_unknown_job_is_null(api: TestClient) -> None:
    assert graphql(api, JOB, id="job_nope")["generationJob"] is None


def test_the_page_loads_the_browser_client_from_conveyor(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta name="conveyor-url" content="http://conveyor.test:3030">' in page.text
    assert "/sdk/realtime.js" in page.text and "subscribeToRun" in page.text
    assert '<option value="alloy">alloy</option>' in page.text


def test_local_audio_is_served_under_media(api: TestClient, tmp_path: Path) -> None:
    LocalStorage(tmp_path / "storage").put("audio/job_1.mp3", b"ID3 bytes")
    response = api.get("/media/audio/job_1.mp3")
    assert response.status_code == 200 and response.content == b"ID3 bytes"
    assert api.get("/healthz").json() == {"status": "ok"}
