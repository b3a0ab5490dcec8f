"""Realtime routes: server-sent events of a run, of the runs of a tag or batch, of a run's
stream (conveyor/server/realtime.py), and a run's metadata set from a backend.

Registered before the runs routes, so `/api/v1/runs/subscribe` is not read as a run id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from conveyor.errors import InvalidRequest, NotFound
from conveyor.models import Run
from conveyor.server.auth import EngineDep, EnvironmentDep, ReaderDep
from conveyor.server.realtime import run_events, runs_events, stream_events
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES, MetadataBody

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/runs", tags=["realtime"], responses=API_RESPONSES
)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}
}
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="The id of the last event received, to resume without gaps or repeats",
    ),
]


def _events(request: Request, body: Any) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(
    "/subscribe",
    summary="Subscribe to the runs of a tag or a batch",
    response_class=StreamingResponse,
    responses=EVENT_STREAM,
)
async def subscribe_runs(
    request: Request,
    reader: ReaderDep,
    engine: EngineDep,
    last_event_id: LastEventId = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    batch_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events: `run` (a snapshot) for every run of the tag or batch, then one at each
    change of one of them; a batch's subscription ends with `end` once all its runs ended."""
    if (tag is None) == (batch_id is None):
        raise InvalidRequest("give exactly one of tag or batch_id")
    env_id = reader.env_id
    done = None
    if tag is not None:
        reader.check_tag(tag)
    if batch_id is not None:
        reader.check_batch(batch_id)
        total, _ = await run_in_threadpool(engine.runs.batch_progress, env_id, batch_id)
        if total == 0:
            raise NotFound(f"batch {batch_id} not found")

        def done() -> bool:
            total, ended = engine.runs.batch_progress(env_id, batch_id)
            return ended >= total

    wakeups = request.app.state.wakeups
    body = runs_events(
        wakeups, engine, env_id, last_event_id, tag=tag, batch_id=batch_id, batch_done=done
    )
    return _events(request, body)


@router.get(
    "/{run_id}/subscribe",
    summary="Subscribe to a run",
    response_class=StreamingResponse,
    responses=EVENT_STREAM,
)
async def subscribe_run(
    run_id: str,
    request: Request,
    reader: ReaderDep,
    engine: EngineDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Server-sent events: `run` (a snapshot of the run, as `GET /api/v1/runs/{id}` answers) now
    and at each change, then `end` once the run has ended."""
    first = await run_in_threadpool(reader.run, engine, run_id)  # 404 or 403 before streaming
    body = run_events(request.app.state.run_feed, first, last_event_id)
    return _events(request, body)


@router.get(
    "/{run_id}/streams/{stream}",
    summary="Read a run's stream",
    response_class=StreamingResponse,
    responses=EVENT_STREAM,
)
async def read_stream(
    run_id: str,
    stream: str,
    request: Request,
    reader: ReaderDep,
    engine: EngineDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Server-sent events: `chunk` for every chunk of the stream from the first (or after
    `Last-Event-ID`), then live; `end` when the stream ends or its run ended."""
    await run_in_threadpool(reader.run, engine, run_id)  # 404 or 403 before streaming
    env_id = reader.env_id
    body = stream_events(request.app.state.wakeups, engine, env_id, run_id, stream, last_event_id)
    return _events(request, body)


@router.put("/{run_id}/metadata", response_model=Run, summary="Replace a run's metadata")
def update_metadata(run_id: str, body: MetadataBody, env: EnvironmentDep, engine: EngineDep) -> Run:
    """Replace the run's metadata (at most 256 KB of JSON); its subscribers see the change."""
    return engine.runs.update_metadata(env.id, run_id, body.metadata)
