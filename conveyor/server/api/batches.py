"""Batch routes: trigger a batch of runs of several tasks, release a batch's idempotency key.
(A batch of one task is the tasks routes' `POST /api/v1/tasks/{task_id}/batch`.)

Routes translate HTTP to engine calls and back; a batch's idempotency key is the engine's
(engine/batches.py), never decided here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import ValidationError

from conveyor.engine import Engine
from conveyor.models import TraceContext, TriggerOptions
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    BATCH_KEY_RESPONSES,
    BatchBody,
    BatchByTaskBody,
    BatchTriggered,
    KeyReset,
    ResetKeyBody,
    batch_triggered,
)

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/batches", tags=["batches"], responses=API_RESPONSES
)


@router.post(
    "",
    response_model=BatchTriggered,
    status_code=status.HTTP_201_CREATED,
    summary="Trigger a batch of runs of several tasks",
    responses=BATCH_KEY_RESPONSES,
)
def batch_trigger(
    body: BatchByTaskBody,
    env: EnvironmentDep,
    engine: EngineDep,
    request: Request,
    response: Response,
) -> BatchTriggered:
    """Create one run per item, each of its item's `task`, 1 to 1,000 items, in one
    transaction: all or none. With `idempotency_key`, 200 with the batch that holds the key
    (`is_cached`), if one does."""
    context = header_trace_context(request)
    items = [(item.task, item.payload, traced(item.options, context)) for item in body.items]
    return trigger_batch(engine, env.id, items, body, response)


def header_trace_context(request: Request) -> TraceContext | None:
    """The W3C trace context in the request's `traceparent` and `tracestate` headers, as an
    HTTP client's OpenTelemetry instrumentation sends them; None if absent or invalid (W3C:
    an invalid context is ignored)."""
    parent = request.headers.get("traceparent")
    if parent is None:
        return None
    state = request.headers.get("tracestate") or None
    try:
        found = TriggerOptions.model_validate(
            {"trace_context": {"traceparent": parent.strip(), "tracestate": state}}
        ).trace_context
    except ValidationError:
        try:  # a tracestate the run cannot keep does not lose the traceparent
            found = TriggerOptions.model_validate(
                {"trace_context": {"traceparent": parent.strip()}}
            ).trace_context
        except ValidationError:
            return None
    return found


def traced(options: TriggerOptions, context: TraceContext | None) -> TriggerOptions:
    """A trigger's options with the request's trace context, unless they carry one (the
    clients put the active span's there)."""
    if context is None or options.trace_context is not None:
        return options
    return options.model_copy(update={"trace_context": context})


def trigger_batch(
    engine: Engine,
    env_id: str,
    items: list[tuple[str, Any, TriggerOptions]],
    body: BatchBody | BatchByTaskBody,
    response: Response,
) -> BatchTriggered:
    """A batch as both batch routes (this one and the tasks routes' batch of one task) answer
    it: 201 with its new runs, or 200 with the batch its idempotency key holds."""
    result = engine.tasks.batch_trigger(
        env_id,
        items,
        idempotency_key=body.idempotency_key,
        idempotency_key_ttl=body.idempotency_key_ttl,
    )
    if result.is_cached:
        response.status_code = status.HTTP_200_OK
    return batch_triggered(result.batch_id, result.runs, result.is_cached)


@router.post(
    "/idempotency-keys/reset",
    response_model=KeyReset,
    summary="Release a batch's idempotency key",
)
def reset_batch_idempotency_key(
    body: ResetKeyBody, env: EnvironmentDep, engine: EngineDep
) -> KeyReset:
    """The next batch with `key` makes a new batch (the batch that held it stays). `released`
    says whether a batch held it; a key no batch holds is not an error."""
    return KeyReset(released=engine.tasks.reset_batch_idempotency_key(env.id, body.key))
