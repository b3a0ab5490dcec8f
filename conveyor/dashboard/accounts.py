"""Account pages: logging in and out (on `conveyor server`), choosing the environment to view,
and the environments' API keys.

    GET  /                        -> /runs
    GET  /login    POST /login    token: a personal access token (cv_pat_...)
    POST /logout
    GET  /environments            the user's projects and their environments
    POST /environments/select     env_id
    GET  /api-keys                the secret key of each environment of the viewed project
    POST /api-keys/rotate         env (slug)

Everything goes through engine.accounts with the logged-in user; in dev there is one
environment and its dev key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep, ViewerDep, access_of
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import EnvironmentKey

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _safe_next(target: str) -> str:
    """Only a path of this site: a login link must not send anyone elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/runs", status_code=303)


@router.get("/login", response_class=HTMLResponse, response_model=None)
def login_page(request: Request) -> HTMLResponse | RedirectResponse:
    access = access_of(request)
    if access.local:
        return RedirectResponse("/runs", status_code=303)
    session = access.session(request)
    return page(
        request,
        None,
        "login.html",
        csrf_token=session.csrf,
        error=None,
        next=_safe_next(request.query_params.get("next", "/runs")),
    )


@router.post("/login", response_model=None)
async def log_in(request: Request, form: FormDep) -> HTMLResponse | RedirectResponse:
    access = access_of(request)
    target = _safe_next(form.get("next", "/runs"))
    if access.local:
        return RedirectResponse(target, status_code=303)
    caller = await run_in_threadpool(access.log_in, request, form.get("token", ""))
    if caller is None:
        session = access.session(request)
        return page(
            request,
            None,
            "login.html",
            status=401,
            csrf_token=session.csrf,
            next=target,
            error="That is not a live personal access token. Use the token "
            "`conveyor server` printed at its first start, or one from `conveyor login`.",
        )
    if access.session(request).env_id is None:
        target = "/environments"
    return redirect(request, target, f"Logged in as {caller.name}.", "ok")


@router.post("/logout")
async def log_out(request: Request, form: FormDep) -> RedirectResponse:
    await run_in_threadpool(access_of(request).log_out, request)
    return RedirectResponse("/login" if not access_of(request).local else "/runs", status_code=303)


@router.get("/environments", response_class=HTMLResponse, response_model=None)
def environments_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
    engine = _engine(request)
    if viewer.local:
        assert viewer.scope is not None
        env = engine.environments.get(viewer.scope.env_id)
        return page(request, viewer, "environments.html", projects=[], local_env=env)
    assert viewer.caller is not None
    projects = access_of(request).projects(viewer.caller, fresh=True)
    return page(request, viewer, "environments.html", projects=projects, local_env=None)


@router.post("/environments/select")
async def select_environment(
    request: Request, viewer: ViewerDep, form: FormDep
) -> RedirectResponse:
    scope = await run_in_threadpool(
        access_of(request).choose, request, viewer, form.get("env_id", "")
    )
    return redirect(request, "/runs", f"Viewing {scope.project_name} / {scope.slug}.", "ok")


@router.get("/api-keys", response_class=HTMLResponse, response_model=None)
def api_keys_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    assert viewer.scope is not None
    keys: list[EnvironmentKey] = []
    if viewer.local:
        secret = access_of(request).settings.local_secret_key
        if secret:
            keys.append(
                EnvironmentKey(
                    project=viewer.scope.project,
                    environment=viewer.scope.slug,
                    kind="dev",
                    secret_key=secret,
                )
            )
    else:
        assert viewer.caller is not None
        accounts = _engine(request).accounts
        project = accounts.get_project(viewer.caller, viewer.scope.project)
        keys = [
            accounts.environment_key(viewer.caller, project.id, env.slug)
            for env in project.environments
        ]
    return page(request, viewer, "api_keys.html", keys=keys)


@router.post("/api-keys/rotate")
async def rotate_key(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    if viewer.local or viewer.caller is None or viewer.scope is None:
        raise InvalidRequest(
            "the dev key lives in .conveyor/dev.json; "
            "delete it and restart `conveyor dev` for a new one"
        )
    env = form.get("env", "")
    await run_in_threadpool(
        _engine(request).accounts.rotate_key, viewer.caller, viewer.scope.project, env
    )
    return redirect(
        request, "/api-keys", f"The {env} key was rotated: the old key stops working now.", "ok"
    )
