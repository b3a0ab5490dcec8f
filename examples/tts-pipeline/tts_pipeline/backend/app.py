"""The FastAPI app: GraphQL at /graphql, the audio files of local storage at /media, /healthz.

`create_app()` builds it from the environment (see tts_pipeline/settings.py): the jobs database,
the storage, and a Conveyor client that triggers `generate-audio` (CONVEYOR_API_URL and
CONVEYOR_SECRET_KEY, or `.conveyor/dev.json` of the folder it runs in). Tests pass their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from strawberry.fastapi import GraphQLRouter

from conveyor import AsyncClient
from tts_pipeline.backend.schema import StartRun, schema
from tts_pipeline.jobs import Job, JobStore
from tts_pipeline.settings import jobs_database
from tts_pipeline.storage import LocalStorage, ObjectStorage, storage_from_env

ORCHESTRATOR = "generate-audio"


class ConveyorStarter:
    """Triggers the orchestrator through Conveyor. The job id is the idempotency key, so a
    request retried after a timeout never starts a second run for the same job."""

    def __init__(self, *, api_url: str | None = None, secret_key: str | None = None) -> None:
        self.api_url, self.secret_key = api_url, secret_key
        self._client: AsyncClient | None = None

    async def __call__(self, job: Job, text: str) -> str:
        if self._client is None:  # made on first use: `conveyor dev` may start after the backend
            self._client = AsyncClient(self.api_url, self.secret_key)
        handle = await self._client.trigger(
            ORCHESTRATOR,
            {"job_id": job.id, "story_id": job.story_id, "text": text, "voice": job.voice},
            idempotency_key=job.id,
            tags=[f"job:{job.id}", f"story:{job.story_id}"],
        )
        return handle.id

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def create_app(
    *,
    jobs: JobStore | None = None,
    start_run: StartRun | None = None,
    storage: ObjectStorage | None = None,
) -> FastAPI:
    starter = start_run or ConveyorStarter()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if isinstance(starter, ConveyorStarter):
            await starter.aclose()

    app = FastAPI(title="TTS pipeline (Conveyor example)", lifespan=lifespan)
    app.state.jobs = jobs or JobStore(jobs_database())
    app.state.start_run = starter
    app.include_router(GraphQLRouter(schema), prefix="/graphql")
    storage = storage or storage_from_env()
    if isinstance(storage, LocalStorage):
        storage.root.mkdir(parents=True, exist_ok=True)
        app.mount("/media", StaticFiles(directory=storage.root, check_dir=False), name="media")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
