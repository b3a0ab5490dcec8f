"""The GraphQL schema: `generateAudio` starts a job and answers at once with its id;
`generationJob` is what clients poll until the job has ended.

    mutation { generateAudio(storyId: "story-1", text: "...", voice: "alloy") {
                 jobId status message } }
    query    { generationJob(id: "job_...") { status audioUrl audioBytes error } }
"""

from __future__ import annotations

import asyncio
import enum
import re
from datetime import UTC, datetime
from typing import Any, Protocol

import strawberry
from strawberry.types import Info

from tts_pipeline.jobs import Job, JobStore
from tts_pipeline.speech import VOICES

MAX_TEXT_CHARS = 200_000  # 50 chunks of 4,000
_STORY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class StartRun(Protocol):
    """Triggers the orchestrator for a job; the run id."""

    async def __call__(self, job: Job, text: str) -> str: ...


@strawberry.enum
class JobStatus(enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@strawberry.type
class GenerationJob:
    id: strawberry.ID
    story_id: str
    voice: str
    status: JobStatus
    text_chars: int
    run_id: str | None = strawberry.field(description="The Conveyor run of the orchestrator")
    audio_url: str | None
    audio_key: str | None
    audio_bytes: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> GenerationJob:
        return cls(
            id=strawberry.ID(job.id),
            story_id=job.story_id,
            voice=job.voice,
            status=JobStatus(job.status),
            text_chars=job.text_chars,
            run_id=job.run_id,
            audio_url=job.audio_url,
            audio_key=job.audio_key,
            audio_bytes=job.audio_bytes,
            error=job.error,
            created_at=_time(job.created_at),
            updated_at=_time(job.updated_at),
            completed_at=_time(job.completed_at) if job.completed_at else None,
        )


@strawberry.type
class GenerateAudioResult:
    job_id: strawberry.ID
    status: JobStatus
    already_in_progress: bool
    message: str = strawberry.field(description='"Started" or "Already in progress"')
    replaced_stale_job_id: strawberry.ID | None = strawberry.field(
        description=(
            "A job of the same story that had been RUNNING for 10 minutes or more, now FAILED"
        )
    )


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _state(info: Info) -> Any:
    return info.context["request"].app.state


@strawberry.type
class Query:
    @strawberry.field(description="A generation job, or null if there is none with this id")
    async def generation_job(self, info: Info, id: strawberry.ID) -> GenerationJob | None:
        jobs: JobStore = _state(info).jobs
        job = await asyncio.to_thread(jobs.get, str(id))
        return GenerationJob.of(job) if job else None


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
        state = _state(info)
        jobs: JobStore = state.jobs
        started = await asyncio.to_thread(jobs.start, story_id, voice, len(text))
        stale_id = strawberry.ID(started.stale.id) if started.stale else None
        if started.already_running:
            return GenerateAudioResult(
                job_id=strawberry.ID(started.job.id),
                status=JobStatus.RUNNING,
                already_in_progress=True,
                message="Already in progress",
                replaced_stale_job_id=None,
            )
        start_run: StartRun = state.start_run
        try:
            run_id = await start_run(started.job, text)
        except Exception as exc:
            await asyncio.to_thread(jobs.fail, started.job.id, f"could not start: {exc}")
            raise RuntimeError(
                f"could not start the generation (job {started.job.id}): {exc}"
            ) from exc
        await asyncio.to_thread(jobs.attach_run, started.job.id, run_id)
        return GenerateAudioResult(
            job_id=strawberry.ID(started.job.id),
            status=JobStatus.RUNNING,
            already_in_progress=False,
            message="Started",
            replaced_stale_job_id=stale_id,
        )


schema = strawberry.Schema(query=Query, mutation=Mutation)
