"""Deploys page: the versions deployed to the viewed environment (newest first), which one is
current, and promoting another (an older one: a rollback). Dev has none: it runs the code of
the project folder, and the page says so.

    GET  /deploys                 ?cursor=
    POST /deploys/promote         version

Promoting changes only what new runs start on; runs already started keep their version (the
engine's rule, conveyor/engine/deployments.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import Deployment

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 20


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/deploys", response_class=HTMLResponse, response_model=None)
def deploys_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    assert viewer.scope is not None
    if viewer.scope.kind == "dev":
        return page(
            request,
            viewer,
            "deploys.html",
            dev=True,
            deployments=[],
            current=None,
            next_cursor=None,
            cursor=None,
        )
    engine = _engine(request)
    cursor = request.query_params.get("cursor") or None
    deployments, next_cursor = engine.deployments.list(
        viewer.env_id, limit=PAGE_SIZE, cursor=cursor
    )
    current = engine.deployments.current_version(viewer.env_id)
    return page(
        request,
        viewer,
        "deploys.html",
        dev=False,
        deployments=deployments,
        current=current,
        next_cursor=next_cursor,
        cursor=cursor,
    )


@router.post("/deploys/promote")
async def promote_version(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    assert viewer.scope is not None
    if viewer.scope.kind == "dev":
        raise InvalidRequest(
            "dev takes no deploys: `conveyor dev` runs the code of the project folder"
        )
    version = form.get("version", "").strip()
    if not version:
        raise InvalidRequest("which version? the form names none")
    made: Deployment = await run_in_threadpool(
        _engine(request).deployments.promote, viewer.env_id, version
    )
    return redirect(
        request,
        "/deploys",
        f"{made.version} is current in {viewer.scope.slug}: new runs start on it; "
        "runs already started keep their version.",
        "ok",
    )
