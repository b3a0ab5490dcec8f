"""Queues page: running and queued runs per queue (live), limits, pause and resume, and the
concurrency override.

    GET  /queues                  the table
    GET  /queues/stream           its live rows as server-sent events
    POST /queues/pause            POST /queues/resume      name
    POST /queues/limit            name, limit (empty: clear the override, the code's limit applies)

Queue names may contain '/', so they travel in the form, not the path.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.live import stream
from conveyor.dashboard.web import DashboardRoute, page, redirect, render
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
MAX_LIMIT = 100_000


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/queues", response_class=HTMLResponse, response_model=None)
def queues_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    engine = _engine(request)
    env = engine.environments.get(viewer.env_id)
    return page(
        request,
        viewer,
        "queues.html",
        queues=engine.queues.list(viewer.env_id),
        env_limit=env.concurrency_limit,
    )


@router.get("/queues/stream")
def queues_stream(request: Request, viewer: ScopedDep) -> StreamingResponse:
    engine = _engine(request)

    def rows() -> str:
        return render(
            "_queue_rows.html", queues=engine.queues.list(viewer.env_id), csrf=viewer.session.csrf
        )

    return stream(request, viewer, "queues", rows)


@router.post("/queues/pause")
async def pause_queue(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    name = form.get("name", "")
    await run_in_threadpool(_engine(request).queues.set_paused, viewer.env_id, name, True)
    return redirect(
        request,
        "/queues",
        f"Queue {name} paused: none of its runs start until it is resumed.",
        "ok",
    )


@router.post("/queues/resume")
async def resume_queue(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    name = form.get("name", "")
    await run_in_threadpool(_engine(request).queues.set_paused, viewer.env_id, name, False)
    return redirect(request, "/queues", f"Queue {name} resumed.", "ok")


@router.post("/queues/limit")
async def set_queue_limit(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    name, text = form.get("name", ""), form.get("limit", "").strip()
    limit: int | None = None
    if text:
        try:
            limit = int(text)
        except ValueError:
            limit = -1
        if not 0 <= limit <= MAX_LIMIT:
            raise InvalidRequest(
                f"a concurrency limit is a whole number from 0 to {MAX_LIMIT:,}, not {text!r}"
            )
    queue = await run_in_threadpool(_engine(request).queues.set_limit, viewer.env_id, name, limit)
    if limit is None:
        return redirect(
            request,
            "/queues",
            f"Queue {name}: override cleared, the code's limit applies "
            f"({queue.concurrency_limit if queue.concurrency_limit is not None else 'none'}).",
            "ok",
        )
    return redirect(request, "/queues", f"Queue {name}: at most {limit} runs at once.", "ok")
