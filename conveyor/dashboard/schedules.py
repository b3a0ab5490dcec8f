"""Schedules pages: the cron schedules of the viewed environment (declared in the code or made
through the API), each with its cron in words, its time zone and its next fire times, the
fires it made lately, and activating or deactivating one.

    GET  /schedules                 the list; ?task= &type= &external_id= &state= &cursor=
    GET  /schedules/{id}            a schedule: timing, next fire times, policies, recent fires
    POST /schedules/{id}/activate   POST /schedules/{id}/deactivate

Ids are read as paths, so any text after /schedules/ (a '/' included) is the engine's
NotFound, shown as the dashboard's 404 page. A declarative schedule's cron, time zone and
policies follow its code; being active is the one thing the page changes on either kind (the
engine keeps it across reloads and deploys).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from conveyor.dashboard.access import FormDep, ScopedDep
from conveyor.dashboard.web import DashboardRoute, page, redirect, zoned
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import Schedule

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE_SIZE = 50
RECENT_FIRES = 10
TYPES = ("declarative", "imperative")
STATES = ("active", "inactive")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@dataclass(frozen=True)
class ScheduleFilters:
    """The list's filters as the query string carries them."""

    task: str = ""
    type: str = ""
    external_id: str = ""
    state: str = ""

    @classmethod
    def of(cls, request: Request) -> ScheduleFilters:
        q = request.query_params
        filters = cls(
            task=q.get("task", "").strip(),
            type=q.get("type", "").strip().lower(),
            external_id=q.get("external_id", "").strip(),
            state=q.get("state", "").strip().lower(),
        )
        if filters.type and filters.type not in TYPES:
            raise InvalidRequest(f"type is one of {', '.join(TYPES)}, not {filters.type!r}")
        if filters.state and filters.state not in STATES:
            raise InvalidRequest(f"state is one of {', '.join(STATES)}, not {filters.state!r}")
        return filters

    @property
    def params(self) -> dict[str, str]:
        return {
            "task": self.task,
            "type": self.type,
            "external_id": self.external_id,
            "state": self.state,
        }

    @property
    def active(self) -> bool:
        return any(self.params.values())

    def page(
        self, engine: Engine, env_id: str, cursor: str | None
    ) -> tuple[list[Schedule], str | None]:
        return engine.schedules.page(
            env_id,
            task=self.task or None,
            external_id=self.external_id or None,
            type=self.type.upper() or None,
            active=None if not self.state else self.state == "active",
            limit=PAGE_SIZE,
            cursor=cursor,
        )


@router.get("/schedules", response_class=HTMLResponse, response_model=None)
def schedules_list(request: Request, viewer: ScopedDep) -> HTMLResponse:
    engine = _engine(request)
    filters = ScheduleFilters.of(request)
    cursor = request.query_params.get("cursor") or None
    schedules, older = filters.page(engine, viewer.env_id, cursor)
    tasks = engine.tasks.list(viewer.env_id)
    return page(
        request,
        viewer,
        "schedules.html",
        schedules=schedules,
        older=older,
        cursor=cursor,
        filters=filters,
        params=filters.params,
        task_ids={t.id for t in tasks},
        scheduled_tasks=sorted(t.id for t in tasks if t.schedule is not None),
    )


@router.get("/schedules/{schedule_id:path}", response_class=HTMLResponse, response_model=None)
def schedule_page(request: Request, schedule_id: str, viewer: ScopedDep) -> HTMLResponse:
    engine = _engine(request)
    schedule = engine.schedules.retrieve(viewer.env_id, schedule_id, fires=RECENT_FIRES)
    task_ids = {t.id for t in engine.tasks.list(viewer.env_id)}
    return page(
        request,
        viewer,
        "schedule.html",
        schedule=schedule,
        task_defined=schedule.task in task_ids,
    )


@router.post("/schedules/{schedule_id:path}/activate")
async def activate_schedule(
    request: Request, schedule_id: str, viewer: ScopedDep, form: FormDep
) -> RedirectResponse:
    made: Schedule = await run_in_threadpool(
        _engine(request).schedules.activate, viewer.env_id, schedule_id
    )
    next_fire = (
        f"next fire at {zoned(made.next_fire_at, made.timezone)}"
        if made.next_fire_at is not None
        else "it has no fire time to come"
    )
    return redirect(
        request,
        _url(made),
        f"Schedule {made.id} activated: {next_fire}. Times passed while it was inactive are "
        "not caught up.",
        "ok",
    )


@router.post("/schedules/{schedule_id:path}/deactivate")
async def deactivate_schedule(
    request: Request, schedule_id: str, viewer: ScopedDep, form: FormDep
) -> RedirectResponse:
    made: Schedule = await run_in_threadpool(
        _engine(request).schedules.deactivate, viewer.env_id, schedule_id
    )
    kept = (
        " It stays inactive across reloads and deploys of its code."
        if made.type == "DECLARATIVE"
        else ""
    )
    return redirect(
        request,
        _url(made),
        f"Schedule {made.id} deactivated: it makes no runs until it is activated (a run made "
        f"ahead for its next time, if there was one, is canceled).{kept}",
        "ok",
    )


def _url(schedule: Schedule) -> str:
    return f"/schedules/{quote(schedule.id, safe='')}"
