"""The FastAPI app: the page at /, GraphQL at /graphql, the audio files of local storage at
/media, /healthz.

`create_app()` builds it from the environment (see tts_pipeline/settings.py): the jobs database,
the storage, and Conveyor (CONVEYOR_API_URL and CONVEYOR_SECRET_KEY, or `.conveyor/dev.json` of
the folder it runs in), which the backend uses to trigger `generate-audio`, read runs and make
the page's public tokens. Tests pass their own.
"""

from __future__ import annotations

import html
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from strawberry.fastapi import GraphQLRouter

from conveyor import Client, Run
from tts_pipeline.backend.schema import Runs, schema
from tts_pipeline.jobs import Job, JobStore
from tts_pipeline.settings import jobs_database
from tts_pipeline.speech import VOICES
from tts_pipeline.storage import LocalStorage, ObjectStorage, storage_from_env

ORCHESTRATOR = "generate-audio"
PAGE_TOKEN_EXPIRY = "1h"  # the page asks for a new one when it opens a job again


class ConveyorRuns:
    """The backend's side of Conveyor, through the blocking `Client` (GraphQL calls it from a
    thread): trigger the orchestrator of a job, tell whether a run is still going, read a run,
    and make the public token a page follows one run with.

    The job id is the trigger's idempotency key, so a request retried after a timeout never
    starts a second run for the same job. `browser_url` is where browsers reach Conveyor's API
    (TTS_CONVEYOR_BROWSER_URL, by default the URL the backend uses)."""

    def __init__(
        self,
        *,
        api_url: str | None = None,
        secret_key: str | None = None,
        browser_url: str | None = None,
    ) -> None:
        self.api_url, self.secret_key = api_url, secret_key
        self._browser_url = browser_url or os.environ.get("TTS_CONVEYOR_BROWSER_URL")
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:  # made on first use: `conveyor dev` may start after the backend
            self._client = Client(self.api_url, self.secret_key)
        return self._client

    @property
    def browser_url(self) -> str:
        return (self._browser_url or self.client.api_url).rstrip("/")

    def trigger(self, job: Job, text: str) -> str:
        handle = self.client.trigger(
            ORCHESTRATOR,
            {"job_id": job.id, "story_id": job.story_id, "text": text, "voice": job.voice},
            idempotency_key=job.id,
            tags=[f"job:{job.id}", f"story:{job.story_id}"],
        )
        return handle.id

    def running(self, run_id: str) -> bool:
        return not self.client.runs.retrieve(run_id).status.is_final

    def retrieve(self, run_id: str) -> Run:
        return self.client.runs.retrieve(run_id)

    def page_token(self, run_id: str) -> str:
        """A public token reading this run only (its metadata, status and output), which is
        all the page shows."""
        return self.client.auth.create_public_token(
            read={"runs": [run_id]}, expires_in=PAGE_TOKEN_EXPIRY
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def page(conveyor_url: str) -> str:
    """The page, told where Conveyor is (it loads /sdk/realtime.js from there)."""
    text = files("tts_pipeline.backend").joinpath("page.html").read_text(encoding="utf-8")
    options = "".join(f'<option value="{v}">{v}</option>' for v in VOICES)
    return text.replace("{{conveyor_url}}", html.escape(conveyor_url)).replace(
        "{{voice_options}}", options
    )


def create_app(
    *,
    jobs: JobStore | None = None,
    runs: Runs | None = None,
    storage: ObjectStorage | None = None,
) -> FastAPI:
    conveyor = runs or ConveyorRuns()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if isinstance(conveyor, ConveyorRuns):
            conveyor.close()

    app = FastAPI(title="TTS pipeline (Conveyor example)", lifespan=lifespan)
    app.state.jobs = jobs or JobStore(jobs_database())
    app.state.runs = conveyor
    app.include_router(GraphQLRouter(schema), prefix="/graphql")
    storage = storage or storage_from_env()
    if isinstance(storage, LocalStorage):
        storage.root.mkdir(parents=True, exist_ok=True)
        app.mount("/media", StaticFiles(directory=storage.root, check_dir=False), name="media")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page(conveyor.browser_url))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
