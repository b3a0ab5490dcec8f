"""Waitpoint tokens page: tokens (waiting ones first), and completing one with a JSON body,
which resumes every run waiting on it.

    GET  /tokens                  ?status=PENDING|COMPLETED|TIMED_OUT|all &cursor=
    POST /tokens/complete         token_id, data (JSON)
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine.engine import Engine
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
    cursor = request.query_params.get("cursor") or None
    tokens, next_cursor = _engine(request).list_tokens(viewer.env_id, status=None if status == "ALL" else status,
                                                       limit=PAGE_SIZE, cursor=cursor)
    return page(request, viewer, "tokens.html", tokens=tokens, next_cursor=next_cursor, token_status=status,
                statuses=STATUSES, cursor=cursor)


@router.post("/tokens/complete")
async def complete_token(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    token_id, text = form.get("token_id", ""), form.get("data", "")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError as exc:
        return redirect(request, "/tokens", f"Token {token_id} not completed: the body is not JSON ({exc}).", "error")
    try:
        await run_in_threadpool(_engine(request).complete_token, viewer.env_id, token_id, data)
    except (Conflict, PayloadError) as exc:
        return redirect(request, "/tokens", str(exc), "error")
    return redirect(request, "/tokens", f"Token {token_id} completed; the runs waiting on it resume.", "ok")
