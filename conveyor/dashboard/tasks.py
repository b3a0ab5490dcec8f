"""Tasks pages: every task of the environment with its queue, retry policy, max_duration,
machine and payload schema, and a form that triggers a test run.

    GET  /tasks                  the list
    GET  /tasks/{id}             a task: its settings, schema, recent runs and the test form
    POST /tasks/{id}/trigger     payload (JSON), tags (comma-separated) -> the new run's page
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from conveyor.dashboard.access import FormDep, ScopedDep, Viewer
from conveyor.dashboard.web import DashboardRoute, page, redirect
from conveyor.engine import Engine
from conveyor.errors import InvalidRequest, PayloadError
from conveyor.models import TriggerOptions

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

RECENT_RUNS = 10
_BLANKS: dict[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "array": [],
    "object": {},
    "null": None,
}


def example_payload(schema: dict[str, Any] | None, depth: int = 0) -> Any:
    """A payload shaped like `schema` to start the test form from: defaults, first enum values,
    and blanks of the right type for required fields."""
    if not schema or depth > 6:
        return {}
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_payload(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {
            name: example_payload(prop, depth + 1)
            for name, prop in (schema.get("properties") or {}).items()
        }
    return _BLANKS.get(str(kind))


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/tasks", response_class=HTMLResponse, response_model=None)
def tasks_list(request: Request, viewer: ScopedDep) -> HTMLResponse:
    engine = _engine(request)
    tasks = sorted(engine.tasks.list(viewer.env_id), key=lambda t: t.id)
    queues = {q.name: q for q in engine.queues.list(viewer.env_id)}
    return page(
        request,
        viewer,
        "tasks.html",
        tasks=tasks,
        queues=queues,
        load_failures=engine.tasks.load_failures(viewer.env_id),
    )


def _task_page(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    payload_text: str | None = None,
    tags: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    engine = _engine(request)
    task = engine.tasks.get(viewer.env_id, task_id)
    recent = engine.runs.page(viewer.env_id, task_id=task_id, limit=RECENT_RUNS).runs
    queue = next((q for q in engine.queues.list(viewer.env_id) if q.name == task.queue.name), None)
    if payload_text is None:
        payload_text = json.dumps(
            example_payload(task.payload_schema), indent=2, ensure_ascii=False
        )
    return page(
        request,
        viewer,
        "task.html",
        status=status,
        task=task,
        queue=queue,
        recent=recent,
        payload_text=payload_text,
        tags=tags,
        error=error,
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse, response_model=None)
def task_page(request: Request, task_id: str, viewer: ScopedDep) -> HTMLResponse:
    return _task_page(request, viewer, task_id)


@router.post("/tasks/{task_id}/trigger", response_model=None)
async def trigger_test_run(
    request: Request, task_id: str, viewer: ScopedDep, form: FormDep
) -> HTMLResponse | RedirectResponse:
    text, tags = form.get("payload", ""), form.get("tags", "")
    try:
        payload = json.loads(text) if text.strip() else None
        options = TriggerOptions(tags=[t.strip() for t in tags.split(",") if t.strip()])
        run = await run_in_threadpool(
            _engine(request).tasks.trigger, viewer.env_id, task_id, payload, options
        )
    except ValueError as exc:  # not JSON, or options pydantic refuses
        message = (
            _validation_message(exc)
            if isinstance(exc, ValidationError)
            else f"The payload is not JSON: {exc}"
        )
        return await run_in_threadpool(
            lambda: _task_page(
                request, viewer, task_id, payload_text=text, tags=tags, error=message, status=422
            )
        )
    except (InvalidRequest, PayloadError) as exc:
        refused = str(exc)
        return await run_in_threadpool(
            lambda: _task_page(
                request, viewer, task_id, payload_text=text, tags=tags, error=refused, status=422
            )
        )
    return redirect(request, f"/runs/{run.id}", f"Test run of {task_id} triggered.", "ok")


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
