"""Environment variables page: the environment's variables by name with the short hash of each
value (never a value), a form to set one and a button to unset each.

    GET  /envvars                 the list and the form
    POST /envvars/set             name, value
    POST /envvars/unset           name

A value goes from the form to the engine and is never rendered, flashed or logged.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/envvars", response_class=HTMLResponse, response_model=None)
def envvars_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    listed = _engine(request).envvars.list(viewer.env_id)
    return page(request, viewer, "envvars.html", variables=listed.data)


@router.post("/envvars/set")
async def set_envvar(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    name = form.get("name", "").strip()
    shown = await run_in_threadpool(
        _engine(request).envvars.set, viewer.env_id, name, form.get("value", "")
    )
    return redirect(
        request,
        "/envvars",
        f"{shown.name} set (hash {shown.digest}); attempts that start from now see it.",
        "ok",
    )


@router.post("/envvars/unset")
async def unset_envvar(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    shown = await run_in_threadpool(
        _engine(request).envvars.unset, viewer.env_id, form.get("name", "")
    )
    return redirect(request, "/envvars", f"{shown.name} unset.", "ok")
