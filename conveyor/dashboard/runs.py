"""Runs pages: the list (filters, search by id, keyset pages, live rows) and the run page
(status and timeline, its metadata and streams as the run writes them, payload, output or
error, trace waterfall, logs per attempt, attempts, parent and children, cancel and replay),
with its live part: the environment's changes (a run's metadata and streams too) wake it.

    GET  /runs                     the list; ?status= &task= &tag= &period= &from= &to= &q=
                                   &cursor= &before=
    GET  /runs/stream              the list's rows as server-sent events
    GET  /runs/{id}                a run
    GET  /runs/{id}/stream         the run's live part as server-sent events
    GET  /runs/{id}/payload.json   output.json, metadata.json: a whole value, as a download
    POST /runs/{id}/cancel         POST /runs/{id}/replay   (payload: the edited JSON)
    POST /runs/bulk                cancel or replay every run matching the list's filters
    POST /runs/bulk/{id}/stop      stop a bulk action (its progress shows above the list)

Every call goes through the engine with the viewer's environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from conveyor.dashboard import waterfall
from conveyor.dashboard.access import FormDep, ScopedDep, Viewer
from conveyor.dashboard.live import stream
from conveyor.dashboard.web import (
    ACTIVE_STATUSES,
    MAX_SHOWN,
    DashboardRoute,
    page,
    redirect,
    render,
)
from conveyor.engine import Engine, RunPage
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError
from conveyor.models import (
    FAILURE_STATUSES,
    BulkAction,
    BulkFilters,
    LogLine,
    Run,
    RunStatus,
    Trace,
)

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE_SIZE = 50
MAX_CHILD_TRACES = 25  # child runs whose own spans the waterfall shows
MAX_STREAMS = 10  # streams of a run the page shows
MAX_STREAM_CHUNKS = 2000  # chunks of each it reads: the page shows the start of a long one
PERIODS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
BULK_SHOWN_FOR = 600.0  # seconds an ended bulk action stays above the list
STATUS_GROUPS = {
    "active": list(ACTIVE_STATUSES),
    "failed": sorted(s.value for s in FAILURE_STATUSES),
}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _moment(text: str, name: str) -> float | None:
    """A `datetime-local` field (read as UTC, as the dashboard shows times) or an ISO time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"{name} is not a date and time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class RunFilters:
    """The list's filters as the query string carries them."""

    status: str = ""
    task: str = ""
    tag: str = ""
    period: str = ""
    created_from: str = ""
    created_to: str = ""
    children: str = (
        ""  # "1": child runs too; by default the list shows root runs (with their child count)
    )

    @classmethod
    def of(cls, request: Request) -> RunFilters:
        q = request.query_params
        return cls(
            status=q.get("status", "").strip(),
            task=q.get("task", "").strip(),
            tag=q.get("tag", "").strip(),
            period=q.get("period", "").strip(),
            created_from=q.get("from", "").strip(),
            created_to=q.get("to", "").strip(),
            children="1" if q.get("children", "") in ("1", "on") else "",
        )

    @property
    def params(self) -> dict[str, str]:
        return {
            "status": self.status,
            "task": self.task,
            "tag": self.tag,
            "period": self.period,
            "from": self.created_from,
            "to": self.created_to,
            "children": self.children,
        }

    @property
    def active(self) -> bool:
        return any(value for name, value in self.params.items() if name != "children")

    def statuses(self) -> list[str]:
        if self.status in STATUS_GROUPS:
            return STATUS_GROUPS[self.status]
        return [part.strip().upper() for part in self.status.split(",") if part.strip()]

    def bulk(self) -> BulkFilters:
        """These filters as a bulk action's (child runs included: a bulk action takes every
        run that matches)."""
        created_from = _moment(self.created_from, "from")
        created_to = _moment(self.created_to, "to")
        if self.period and self.period not in PERIODS:
            raise InvalidRequest(f"period is one of {', '.join(PERIODS)}")
        return BulkFilters(
            status=self.statuses() or None,
            task=self.task or None,
            tag=self.tag or None,
            since=PERIODS[self.period] if self.period else None,
            created_from=None
            if created_from is None
            else datetime.fromtimestamp(created_from, UTC),
            created_to=None if created_to is None else datetime.fromtimestamp(created_to, UTC),
        )

    def page(
        self,
        engine: Engine,
        env_id: str,
        *,
        older_than: str | None = None,
        newer_than: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> RunPage:
        created_from = _moment(self.created_from, "from")
        if self.period:
            if self.period not in PERIODS:
                raise InvalidRequest(f"period is one of {', '.join(PERIODS)}")
            since = datetime.now(UTC).timestamp() - PERIODS[self.period]
            created_from = max(created_from or since, since)
        return engine.runs.page(
            env_id,
            statuses=self.statuses(),
            task_id=self.task or None,
            tag=self.tag or None,
            created_from=created_from,
            created_to=_moment(self.created_to, "to"),
            limit=limit,
            older_than=older_than or None,
            newer_than=newer_than or None,
            roots=not self.children,
        )


def _cursors(request: Request) -> tuple[str | None, str | None]:
    return request.query_params.get("cursor") or None, request.query_params.get("before") or None


def _list_context(
    engine: Engine, viewer: Viewer, filters: RunFilters, cursor: str | None, before: str | None
) -> dict[str, Any]:
    runs_page = filters.page(engine, viewer.env_id, older_than=cursor, newer_than=before)
    return {
        "runs_page": runs_page,
        "bulk_actions": _recent_bulk_actions(engine, viewer.env_id),
        "filters": filters,
        "params": filters.params,
        "now": datetime.now(UTC),
    }


def _recent_bulk_actions(engine: Engine, env_id: str) -> list[BulkAction]:
    """The bulk actions running, and those that ended in the last minutes."""
    shown_after = datetime.now(UTC).timestamp() - BULK_SHOWN_FOR
    return [
        action
        for action in engine.bulk.list(env_id, limit=5)
        if not action.is_final
        or (action.completed_at is not None and action.completed_at.timestamp() > shown_after)
    ]


@router.get("/runs", response_class=HTMLResponse, response_model=None)
def runs_list(request: Request, viewer: ScopedDep) -> HTMLResponse | RedirectResponse:
    engine = _engine(request)
    filters = RunFilters.of(request)
    search = request.query_params.get("q", "").strip()
    missing = None
    if search:
        try:
            engine.runs.get(viewer.env_id, search)
        except NotFound:
            missing = search
        else:
            return RedirectResponse(f"/runs/{search}", status_code=303)
    cursor, before = _cursors(request)
    context = _list_context(engine, viewer, filters, cursor, before)
    tasks = sorted(t.id for t in engine.tasks.list(viewer.env_id))
    stream_query = request.url.query
    return page(
        request,
        viewer,
        "runs.html",
        tasks=tasks,
        search=search,
        missing=missing,
        statuses=[s.value for s in RunStatus],
        periods=list(PERIODS),
        stream_query=stream_query,
        **context,
    )


@router.get("/runs/stream")
def runs_stream(request: Request, viewer: ScopedDep) -> StreamingResponse:
    engine = _engine(request)
    filters = RunFilters.of(request)
    cursor, before = _cursors(request)

    def rows() -> str:
        return render(
            "_runs_live.html",
            csrf=viewer.session.csrf,
            **_list_context(engine, viewer, filters, cursor, before),
        )

    return stream(request, viewer, "runs", rows)


# -- one run -----------------------------------------------------------------------------------


def _children(engine: Engine, env_id: str, trace: Trace) -> dict[str, Trace]:
    found: dict[str, Trace] = {}
    for run_id in waterfall.child_run_ids(trace)[:MAX_CHILD_TRACES]:
        try:
            found[run_id] = engine.runs.trace(env_id, run_id)
        except NotFound:
            continue
    return found


def _logs_by_attempt(logs: list[LogLine]) -> list[tuple[int, list[LogLine]]]:
    grouped: dict[int, list[LogLine]] = {}
    for line in logs:
        grouped.setdefault(line.attempt, []).append(line)
    return sorted(grouped.items())


@dataclass(frozen=True)
class StreamView:
    """A stream of the run as the page shows it: text chunks joined, other chunks one JSON a
    line, cut at MAX_SHOWN characters."""

    name: str
    chunks: int
    ended: bool
    text: str
    cut: bool  # only the start is shown

    @classmethod
    def read(
        cls, engine: Engine, env_id: str, run_id: str, name: str, total: int, ended: bool
    ) -> StreamView:
        chunks, _ = engine.runs.stream(env_id, run_id, name, limit=MAX_STREAM_CHUNKS)
        values = [value for _, value in chunks]
        if all(isinstance(value, str) for value in values):
            text = "".join(values)
        else:
            text = "\n".join(json.dumps(value, ensure_ascii=False) for value in values)
        cut = len(text) > MAX_SHOWN or len(chunks) < total
        return cls(name, total, ended, text[:MAX_SHOWN], cut)


def _streams(engine: Engine, env_id: str, run_id: str) -> list[StreamView]:
    found = engine.runs.streams(env_id, run_id)[:MAX_STREAMS]
    return [StreamView.read(engine, env_id, run_id, s.name, s.chunks, s.ended) for s in found]


def _run_context(engine: Engine, env_id: str, run_id: str) -> dict[str, Any]:
    run = engine.runs.get(env_id, run_id, with_attempts=True)
    trace = engine.runs.trace(env_id, run_id)
    now = datetime.now(UTC)
    children = _children(engine, env_id, trace)
    child_rows = [
        row for row in waterfall.build(trace, {}, now=now).rows if row.run_id and row.depth > 0
    ]
    logs = engine.runs.logs(env_id, run_id)
    return {
        "run": run,
        "waterfall": waterfall.build(trace, children, now=now),
        "child_rows": child_rows,
        "logs": _logs_by_attempt(logs),
        "log_count": len(logs),
        "streams": _streams(engine, env_id, run_id),
        "now": now,
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse, response_model=None)
def run_page(request: Request, run_id: str, viewer: ScopedDep) -> HTMLResponse:
    context = _run_context(_engine(request), viewer.env_id, run_id)
    return _run_page(request, viewer, context)


def _run_page(
    request: Request,
    viewer: Viewer,
    context: dict[str, Any],
    *,
    replay_text: str | None = None,
    replay_error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    run: Run = context["run"]
    if replay_text is None:
        replay_text = json.dumps(run.payload, indent=2, ensure_ascii=False)
        if len(replay_text) > MAX_SHOWN:
            replay_text = None  # too large for a text box: the replay sends it unchanged
    return page(
        request,
        viewer,
        "run.html",
        status=status,
        replay_text=replay_text,
        replay_error=replay_error,
        **context,
    )


@router.get("/runs/{run_id}/{part}.json", response_model=None)
def run_value(request: Request, run_id: str, part: str, viewer: ScopedDep) -> Response:
    """A run's whole payload, output or metadata, as a download: the page shows only the start
    of a large one."""
    if part not in ("payload", "output", "metadata"):
        raise NotFound(
            f"a run has no {part}.json; there are payload.json, output.json and metadata.json"
        )
    run = _engine(request).runs.get(viewer.env_id, run_id)
    body = json.dumps(getattr(run, part), indent=2, ensure_ascii=False)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{run.id}-{part}.json"'},
    )


@router.get("/runs/{run_id}/stream")
def run_stream(request: Request, run_id: str, viewer: ScopedDep) -> StreamingResponse:
    engine = _engine(request)
    engine.runs.get(viewer.env_id, run_id)  # a 404 now rather than an empty stream

    def live() -> str:
        return render(
            "_run_live.html",
            csrf=viewer.session.csrf,
            **_run_context(engine, viewer.env_id, run_id),
        )

    return stream(request, viewer, "run", live)


@router.post("/runs/bulk")
async def bulk_action(request: Request, viewer: ScopedDep, form: FormDep) -> RedirectResponse:
    """Cancel or replay every run matching the filters the list showed (the form carries them)."""
    filters = RunFilters(
        status=form.get("status", "").strip(),
        task=form.get("task", "").strip(),
        tag=form.get("tag", "").strip(),
        period=form.get("period", "").strip(),
        created_from=form.get("from", "").strip(),
        created_to=form.get("to", "").strip(),
        children=form.get("children", ""),
    )
    back = "/runs?" + urlencode({k: v for k, v in filters.params.items() if v})
    kind: Literal["cancel", "replay"]
    if form.get("kind") == "cancel":
        kind = "cancel"
    elif form.get("kind") == "replay":
        kind = "replay"
    else:
        return redirect(request, back, "Choose cancel or replay.", "error")
    try:
        action = await run_in_threadpool(
            _engine(request).bulk.create, viewer.env_id, kind, filters.bulk()
        )
    except InvalidRequest as exc:
        return redirect(request, back, str(exc), "error")
    noun = "unfinished runs" if kind == "cancel" else "runs"
    return redirect(
        request,
        back,
        f"Bulk {kind} {action.id} started on {action.total} matching {noun}.",
        "ok",
    )


@router.post("/runs/bulk/{action_id}/stop")
async def stop_bulk_action(
    request: Request, action_id: str, viewer: ScopedDep, form: FormDep
) -> RedirectResponse:
    try:
        action = await run_in_threadpool(_engine(request).bulk.stop, viewer.env_id, action_id)
    except Conflict as exc:
        return redirect(request, "/runs", str(exc), "error")
    return redirect(
        request, "/runs", f"Bulk {action.kind} {action.id} stopped after {action.done} runs.", "ok"
    )


@router.post("/runs/{run_id}/cancel")
async def cancel_run(
    request: Request, run_id: str, viewer: ScopedDep, form: FormDep
) -> RedirectResponse:
    run = await run_in_threadpool(_engine(request).runs.cancel, viewer.env_id, run_id)
    return redirect(request, f"/runs/{run.id}", f"Run {run.id} canceled.", "ok")


@router.post("/runs/{run_id}/replay", response_model=None)
async def replay_run(
    request: Request, run_id: str, viewer: ScopedDep, form: FormDep
) -> HTMLResponse | RedirectResponse:
    engine = _engine(request)
    text = form.get("payload", "")
    if form.get("same"):
        run = await run_in_threadpool(engine.runs.replay, viewer.env_id, run_id)
        return redirect(request, f"/runs/{run.id}", f"Replayed {run_id} as this run.", "ok")
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError as exc:
        context = await run_in_threadpool(_run_context, engine, viewer.env_id, run_id)
        return _run_page(
            request,
            viewer,
            context,
            replay_text=text,
            status=422,
            replay_error=f"The payload is not JSON: {exc}",
        )
    try:
        run = await run_in_threadpool(
            lambda: engine.runs.replay(viewer.env_id, run_id, payload, use_payload=True)
        )
    except (InvalidRequest, PayloadError) as exc:  # the task's schema refuses it, say
        context = await run_in_threadpool(_run_context, engine, viewer.env_id, run_id)
        return _run_page(
            request, viewer, context, replay_text=text, status=422, replay_error=str(exc)
        )
    return redirect(request, f"/runs/{run.id}", f"Replayed {run_id} as this run.", "ok")
