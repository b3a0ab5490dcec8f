"""The GraphQL schema: `generateAudio` starts a job and answers at once with its id, its run and a
public token reading that run, which the page follows live from Conveyor (/sdk/realtime.js);
`generationJob` reads a job's run for clients without the page (curl, other services).

    mutation { generateAudio(storyId: "story-1", text: "...", voice: "alloy") {
                 jobId runId accessToken status message } }
    query    { generationJob(id: "job_...") { status chunksDone chunksTotal audioUrl error } }
"""

from __future__ import annotations

import asyncio
import enum
import re
from datetime import UTC, datetime
from typing import Any, Protocol

import strawberry
from strawberry.types import Info

from conveyor import Run, RunStatus
from tts_pipeline.jobs import Job, JobStore
from tts_pipeline.speech import VOICES

MAX_TEXT_CHARS = 200_000  # 50 chunks of 4,000
_STORY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Runs(Protocol):
    """What the backend asks of Conveyor (tts_pipeline/backend/app.py's ConveyorRuns). Blocking:
    called from a thread."""

    @property
    def browser_url(self) -> str: ...

    def trigger(self, job: Job, text: str) -> str:
        """Trigger the orchestrator of `job`; its run id."""
        ...

    def running(self, run_id: str) -> bool: ...

    def retrieve(self, run_id: str) -> Run: ...

    def page_token(self, run_id: str) -> str:
        """A public access token reading the run, for the page."""
        ...


@strawberry.enum
class JobStatus(enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


def job_status(status: RunStatus) -> JobStatus:
    if not status.is_final:
        return JobStatus.RUNNING
    return JobStatus.SUCCEEDED if status == RunStatus.COMPLETED else JobStatus.FAILED


def _error(run: Run) -> str | None:
    if run.status == RunStatus.COMPLETED or not run.status.is_final:
        return None
    return run.error.message if run.error else f"the run ended {run.status.value}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@strawberry.type
class GenerationJob:
    id: strawberry.ID
    story_id: str
    voice: str
    text_chars: int
    run_id: str = strawberry.field(description="The Conveyor run of the orchestrator")
    created_at: datetime
    status: JobStatus = strawberry.field(description="The run's: RUNNING until it ends")
    chunks_total: int | None = strawberry.field(description="Once the story is cut")
    chunks_done: int
    audio_url: str | None
    audio_key: str | None
    audio_bytes: int | None
    error: str | None
    completed_at: datetime | None

    @strawberry.field(description="A public token reading the job's run, for 1 hour")
    async def access_token(self, info: Info) -> str:
        return await asyncio.to_thread(_runs(info).page_token, self.run_id)

    @classmethod
    def of(cls, job: Job, run: Run) -> GenerationJob:
        done = run.status == RunStatus.COMPLETED
        audio = run.output if done and isinstance(run.output, dict) else {}
        return cls(
            id=strawberry.ID(job.id),
            story_id=job.story_id,
            voice=job.voice,
            text_chars=job.text_chars,
            run_id=job.run_id,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            status=job_status(run.status),
            chunks_total=_int(run.metadata.get("total")),
            chunks_done=_int(run.metadata.get("done")) or 0,
            audio_url=audio.get("url"),
            audio_key=audio.get("key"),
            audio_bytes=audio.get("bytes"),
            error=_error(run),
            completed_at=run.completed_at if run.status.is_final else None,
        )


@strawberry.type
class GenerateAudioResult:
    job_id: strawberry.ID
    run_id: str
    status: JobStatus
    already_in_progress: bool
    message: str = strawberry.field(description='"Started" or "Already in progress"')
    access_token: str = strawberry.field(
        description="A public token reading the job's run (for 1 hour): the page follows the run "
        "with it from Conveyor"
    )


def _state(info: Info) -> Any:
    return info.context["request"].app.state


def _runs(info: Info) -> Runs:
    runs: Runs = _state(info).runs
    return runs


@strawberry.type
class Query:
    @strawberry.field(description="A generation job, or null if there is none with this id")
    async def generation_job(self, info: Info, id: strawberry.ID) -> GenerationJob | None:
        jobs: JobStore = _state(info).jobs
        job = await asyncio.to_thread(jobs.get, str(id))
        if job is None:
            return None
        run = await asyncio.to_thread(_runs(info).retrieve, job.run_id)
        return GenerationJob.of(job, run)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Start turning a story into one MP3; answers at once with the job id"
    )
    async def generate_audio(
        self, info: Info, story_id: str, text: str, voice: str = "alloy"
    ) -> GenerateAudioResult:
        if not _STORY_ID.match(story_id):
            raise ValueError("storyId must be 1 to 128 letters, digits or . _ : -")
        if not text.strip():
            raise ValueError("text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(text):,} characters; at most {MAX_TEXT_CHARS:,}")
        if voice not in VOICES:
            raise ValueError(f"unknown voice {voice!r}; one of {', '.join(VOICES)}")
        jobs: JobStore = _state(info).jobs
        runs = _runs(info)

        def trigger(job: Job) -> str:
            return runs.trigger(job, text)

        try:
            started = await asyncio.to_thread(
                jobs.start, story_id, voice, len(text), running=runs.running, trigger=trigger
            )
        except Exception as exc:
            raise RuntimeError(f"could not start the generation: {exc}") from exc
        token = await asyncio.to_thread(runs.page_token, started.job.run_id)
        return GenerateAudioResult(
            job_id=strawberry.ID(started.job.id),
            run_id=started.job.run_id,
            status=JobStatus.RUNNING,
            already_in_progress=started.already_running,
            message="Already in progress" if started.already_running else "Started",
            access_token=token,
        )


schema = strawberry.Schema(query=Query, mutation=Mutation)
