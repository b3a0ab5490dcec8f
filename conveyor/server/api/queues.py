"""Queue routes: list and show queues, pause and resume them, change their limit.

Queue names may contain '/', so names are matched with the `path` converter; the action
routes end in a fixed word, which the router tells apart from a name ending in it.
"""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.models import QueueInfo
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES, ConcurrencyBody, QueueList

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/queues", tags=["queues"], responses=API_RESPONSES
)


@router.get("", response_model=QueueList, summary="List queues")
def list_queues(env: EnvironmentDep, engine: EngineDep) -> QueueList:
    """Every queue with its limit, whether it is paused, and how many runs execute and wait in
    it."""
    return QueueList(data=engine.queues.list(env.id))


@router.post("/{name:path}/pause", response_model=QueueInfo, summary="Pause a queue")
def pause_queue(name: str, env: EnvironmentDep, engine: EngineDep) -> QueueInfo:
    """No new run of the queue starts until it is resumed; executing runs go on."""
    return engine.queues.set_paused(env.id, name, True)


@router.post("/{name:path}/resume", response_model=QueueInfo, summary="Resume a queue")
def resume_queue(name: str, env: EnvironmentDep, engine: EngineDep) -> QueueInfo:
    return engine.queues.set_paused(env.id, name, False)


@router.post(
    "/{name:path}/concurrency", response_model=QueueInfo, summary="Set a queue's concurrency limit"
)
def set_queue_concurrency(
    name: str, body: ConcurrencyBody, env: EnvironmentDep, engine: EngineDep
) -> QueueInfo:
    """Override the queue's limit: at most `concurrency_limit` runs of it execute at once (per
    concurrency key). The override survives code reloads; null clears it, so the limit the
    task code declares applies again."""
    return engine.queues.set_limit(env.id, name, body.concurrency_limit)


# Registered after the actions so a name-swallowing `{name:path}` is always the last resort.
@router.get("/{name:path}", response_model=QueueInfo, summary="Retrieve a queue")
def retrieve_queue(name: str, env: EnvironmentDep, engine: EngineDep) -> QueueInfo:
    return engine.queues.get(env.id, name)
