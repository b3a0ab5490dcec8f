"""Alerts page: the environment's alert channels and their latest deliveries with their status,
a form to add a channel, and buttons to test and delete each.

    GET  /alerts                  the channels, the deliveries and the form
    POST /alerts/create           event, channel kind, target, and the event's options
    POST /alerts/test             id
    POST /alerts/delete           id

A webhook's signing secret is shown once, in the page the create redirects to (flashed), as
`conveyor alerts create` prints it; after that only its hint.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

EVENTS = ["run.failed", "deploy.succeeded", "deploy.failed", "queue.backlog", "worker.fleet_empty"]
CHANNELS = ["webhook", "slack", "email"]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/alerts", response_class=HTMLResponse, response_model=None)
def alerts_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    engine = _engine(request)
    channels = engine.alerts.list(viewer.env_id).data
    deliveries = engine.alerts.deliveries(viewer.env_id, 50).data
    return page(
        request,
        viewer,
        "alerts.html",
        channels=channels,
        deliveries=deliveries,
        events=EVENTS,
        kinds=CHANNELS,
    )


def _optional(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


@router.post("/alerts/create")
async def create_alert(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    kind = form.get("channel", "")
    if kind not in CHANNELS:
        raise InvalidRequest("choose a channel: webhook, slack or email")
    backlog_text = _optional(form, "backlog")
    try:
        backlog = int(backlog_text) if backlog_text is not None else None
    except ValueError:
        raise InvalidRequest("backlog is a number of runs") from None
    made = await run_in_threadpool(
        lambda: _engine(request).alerts.create(
            viewer.env_id,
            event=form.get("event", ""),
            **{kind: form.get("target", "")},
            task=_optional(form, "task"),
            queue=_optional(form, "queue"),
            backlog=backlog,
            backlog_for=_optional(form, "backlog_for"),
            window=_optional(form, "window"),
        )
    )
    said = f"Alert {made.id} created: {made.event} → {made.channel} {made.target}."
    if made.secret:
        said += f" Its signing secret, shown only this once: {made.secret}"
    return redirect(request, "/alerts", said, "ok")


@router.post("/alerts/test")
async def test_alert(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    delivery = await run_in_threadpool(
        _engine(request).alerts.test, viewer.env_id, form.get("id", "")
    )
    return redirect(request, "/alerts", f"Test alert {delivery.id} on its way.", "ok")


@router.post("/alerts/delete")
async def delete_alert(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    gone = await run_in_threadpool(
        _engine(request).alerts.delete, viewer.env_id, form.get("id", "")
    )
    return redirect(request, "/alerts", f"Alert {gone.id} deleted.", "ok")
