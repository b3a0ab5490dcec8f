"""Task routes: trigger a task, trigger a batch of it, release an idempotency key, list and
show task definitions.

Routes translate HTTP to engine calls and back; validation of payloads against a task's
schema, idempotency and batching all-or-nothing are the engine's, never done here.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from conveyor.models import TaskDefinition
from conveyor.server.api.batches import header_trace_context, traced, trigger_batch
from conveyor.server.auth import EngineDep, EnvironmentDep, TriggererDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    BATCH_KEY_RESPONSES,
    PUBLIC_TOKEN_RESPONSE,
    BatchBody,
    BatchTriggered,
    KeyReset,
    ResetKeyBody,
    TaskList,
    TriggerBody,
    Triggered,
    triggered,
)

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/tasks", tags=["tasks"], responses=API_RESPONSES
)


@router.post(
    "/{task_id}/trigger",
    response_model=Triggered,
    status_code=status.HTTP_201_CREATED,
    summary="Trigger a task",
    responses={
        200: {
            "model": Triggered,
            "description": "The idempotency key already has a run; that run is returned",
        },
        **PUBLIC_TOKEN_RESPONSE,
    },
)
async def trigger_task(
    task_id: str,
    body: TriggerBody,
    caller: TriggererDep,
    engine: EngineDep,
    request: Request,
    response: Response,
) -> Triggered:
    """Create a run of `task_id` with `payload` and `options` (the Python option names).
    201 with the new run's id, or 200 with the existing run when the idempotency key has one.
    A trigger token of `task_id` may stand in for the key, once: its answer carries
    `public_access_token`, reading the run it made. A W3C `traceparent` header (an
    instrumented HTTP client's) is the run's trace context unless `options.trace_context`
    gives one (docs/opentelemetry.md)."""
    env_id, token = caller.env_id, caller.token
    options = traced(body.options, header_trace_context(request))
    if (
        engine.store.concurrent_writers
    ):  # a database over the network: wait for it off the event loop
        run = await run_in_threadpool(
            engine.tasks.trigger, env_id, task_id, body.payload, options, token=token
        )
    else:
        # embedded SQLite: one trigger's transaction (~0.15 ms) costs less than the thread hop,
        # and this is the path from a trigger to its start
        run = engine.tasks.trigger(env_id, task_id, body.payload, options, token=token)
    if run.is_cached:
        response.status_code = status.HTTP_200_OK
    answer = triggered(run)
    if token is not None and not run.is_cached:
        # only the run this trigger made: an idempotency key must not open another's run
        answer.public_access_token = engine.auth.run_token(env_id, run.id).token
    return answer


@router.post(
    "/{task_id}/batch",
    response_model=BatchTriggered,
    status_code=status.HTTP_201_CREATED,
    summary="Trigger a batch of runs of a task",
    responses=BATCH_KEY_RESPONSES,
)
def batch_trigger_task(
    task_id: str,
    body: BatchBody,
    env: EnvironmentDep,
    engine: EngineDep,
    request: Request,
    response: Response,
) -> BatchTriggered:
    """Create one run per item, 1 to 1,000 items, in one transaction: all or none. An invalid
    item fails the whole batch with an error naming it (`items[3]: ...`). With
    `idempotency_key`, 200 with the batch that holds the key (`is_cached`), if one does."""
    context = header_trace_context(request)
    items = [(task_id, item.payload, traced(item.options, context)) for item in body.items]
    return trigger_batch(engine, env.id, items, body, response)


@router.post(
    "/{task_id}/idempotency-keys/reset",
    response_model=KeyReset,
    summary="Release an idempotency key",
)
def reset_idempotency_key(
    task_id: str, body: ResetKeyBody, env: EnvironmentDep, engine: EngineDep
) -> KeyReset:
    """The next trigger of `task_id` with `key` makes a new run (the run that held it stays).
    `released` says whether a run held it; a key no run holds is not an error."""
    return KeyReset(released=engine.tasks.reset_idempotency_key(env.id, task_id, body.key))


@router.get("", response_model=TaskList, summary="List tasks")
def list_tasks(env: EnvironmentDep, engine: EngineDep) -> TaskList:
    """Every task the environment's workers have registered, with its effective settings."""
    return TaskList(data=engine.tasks.list(env.id))


@router.get("/{task_id}", response_model=TaskDefinition, summary="Retrieve a task")
def retrieve_task(task_id: str, env: EnvironmentDep, engine: EngineDep) -> TaskDefinition:
    return engine.tasks.get(env.id, task_id)
