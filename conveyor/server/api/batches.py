"""Batch routes: trigger a batch of runs of several tasks, release a batch's idempotency key.
(A batch of one task is the tasks routes' `POST /api/v1/tasks/{task_id}/batch`.)

Routes translate HTTP to engine calls and back; a batch's idempotency key is the engine's
(engine/batches.py), never decided here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from conveyor.engine import Engine
from conveyor.models import TriggerOptions
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
    body: BatchByTaskBody, env: EnvironmentDep, engine: EngineDep, response: Response
) -> BatchTriggered:
    """Create one run per item, each of its item's `task`, 1 to 1,000 items, in one
    transaction: all or none. With `idempotency_key`, 200 with the batch that holds the key
    (`is_cached`), if one does."""
    items = [(item.task, item.payload, item.options) for item in body.items]
    return trigger_batch(engine, env.id, items, body, response)


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
