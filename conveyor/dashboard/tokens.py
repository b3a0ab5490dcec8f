"""Waitpoint tokens page: tokens (waiting ones first), and completing one with a JSON body,
which resumes every run waiting on it.

    GET  /tokens                  ?status=PENDING|COMPLETED|TIMED_OUT|all &cursor=
    POST /tokens/complete         token_id, data (JSON); refused: the page again (422) with the
                                  body kept
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep, Viewer
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine
from conveyor.errors import Conflict, PayloadError

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 50
STATUSES = ("PENDING", "COMPLETED", "TIMED_OUT")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/tokens", response_class=HTMLResponse, response_model=None)
def tokens_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    status = request.query_params.get("status", "PENDING").upper()
    return _tokens(request, viewer, status, request.query_params.get("cursor") or None)


def _tokens(
    request: Request,
    viewer: Viewer,
    status: str,
    cursor: str | None,
    *,
    edited: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    code: int = 200,
) -> HTMLResponse:
    """The list, each token with the runs waiting on it and its callback URL; `edited` and
    `errors` keep the body someone typed for a token, and say why it was refused."""
    engine = _engine(request)
    tokens, next_cursor = engine.waitpoints.list_tokens(
        viewer.env_id, status=None if status == "ALL" else status, limit=PAGE_SIZE, cursor=cursor
    )
    waiters = engine.waitpoints.token_waiters(
        viewer.env_id, [t["id"] for t in tokens if t["status"] == "PENDING"]
    )
    return page(
        request,
        viewer,
        "tokens.html",
        status=code,
        tokens=tokens,
        next_cursor=next_cursor,
        token_status=status,
        statuses=STATUSES,
        cursor=cursor,
        waiters=waiters,
        edited=edited or {},
        errors=errors or {},
    )


@router.post("/tokens/complete", response_model=None)
async def complete_token(
    request: Request, viewer: ScopedDep, form: FormDep
) -> RedirectResponse | HTMLResponse:
    token_id, text = form.get("token_id", ""), form.get("data", "")
    cursor = form.get("cursor") or None

    def refused(
        message: str,
    ) -> HTMLResponse:  # the page again, the typed body kept, the reason beside it
        return _tokens(
            request,
            viewer,
            "PENDING",
            cursor,
            edited={token_id: text},
            errors={token_id: message},
            code=422,
        )

    try:
        data = json.loads(text) if text.strip() else None
    except ValueError as exc:
        return await run_in_threadpool(refused, f"Not completed: the body is not JSON ({exc}).")
    try:
        await run_in_threadpool(
            _engine(request).waitpoints.complete_token, viewer.env_id, token_id, data
        )
    except PayloadError as exc:  # a body it cannot take: fix it in place
        return await run_in_threadpool(refused, f"Not completed: {exc}")
    except Conflict as exc:  # completed or timed out meanwhile: it has left the list
        return redirect(request, "/tokens", str(exc), "error")
    return redirect(
        request, "/tokens", f"Token {token_id} completed; the runs waiting on it resume.", "ok"
    )
