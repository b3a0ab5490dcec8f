"""Schedule routes: cron schedules of scheduled tasks (docs/schedules.md).

Declarative schedules come from the code and change with it; these routes create, change and
remove imperative ones, and activate or deactivate either kind.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from conveyor.models import Schedule
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    CONFLICT_RESPONSE,
    CreateScheduleBody,
    ScheduleList,
    UpdateScheduleBody,
)

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/schedules", tags=["schedules"], responses=API_RESPONSES
)


@router.post("", response_model=Schedule, summary="Create a schedule")
def create_schedule(body: CreateScheduleBody, env: EnvironmentDep, engine: EngineDep) -> Schedule:
    """An imperative schedule of a scheduled task, per customer with `external_id`. With a
    `deduplication_key` some schedule holds already, that schedule is updated and returned, so
    creating is idempotent."""
    return engine.schedules.create(env.id, **body.model_dump())


@router.get("", response_model=ScheduleList, summary="List schedules")
def list_schedules(
    env: EnvironmentDep,
    engine: EngineDep,
    task: Annotated[str | None, Query(max_length=128, description="Only this task's")] = None,
    external_id: Annotated[str | None, Query(max_length=256)] = None,
    type: Annotated[Literal["DECLARATIVE", "IMPERATIVE"] | None, Query()] = None,
    active: Annotated[bool | None, Query(description="Only active (or inactive) ones")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Schedules per page")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^sched_[0-9a-z]{1,40}$", description="`next_cursor` of the previous page"),
    ] = None,
) -> ScheduleList:
    """Schedules of the environment, newest first, one page at a time."""
    data, next_cursor = engine.schedules.page(
        env.id,
        task=task,
        external_id=external_id,
        type=type,
        active=active,
        limit=limit,
        cursor=cursor,
    )
    return ScheduleList(data=data, next_cursor=next_cursor)


@router.get("/{schedule_id}", response_model=Schedule, summary="Retrieve a schedule")
def retrieve_schedule(schedule_id: str, env: EnvironmentDep, engine: EngineDep) -> Schedule:
    """A schedule with its next five fire times and its latest fires (`recent_fires`)."""
    return engine.schedules.retrieve(env.id, schedule_id)


@router.put(
    "/{schedule_id}",
    response_model=Schedule,
    summary="Update a schedule",
    responses=CONFLICT_RESPONSE,
)
def update_schedule(
    schedule_id: str, body: UpdateScheduleBody, env: EnvironmentDep, engine: EngineDep
) -> Schedule:
    """Change an imperative schedule; settings left out stay. 409 for a declarative one: it
    changes with its code."""
    return engine.schedules.update(env.id, schedule_id, **body.model_dump(exclude_unset=True))


@router.delete(
    "/{schedule_id}",
    response_model=Schedule,
    summary="Delete a schedule",
    responses=CONFLICT_RESPONSE,
)
def delete_schedule(schedule_id: str, env: EnvironmentDep, engine: EngineDep) -> Schedule:
    """Remove an imperative schedule (answered as it was); the runs it made stay. 409 for a
    declarative one."""
    return engine.schedules.delete(env.id, schedule_id)


@router.post("/{schedule_id}/activate", response_model=Schedule, summary="Activate a schedule")
def activate_schedule(schedule_id: str, env: EnvironmentDep, engine: EngineDep) -> Schedule:
    """Fire again from the next fire time on; times passed while inactive are not caught up."""
    return engine.schedules.activate(env.id, schedule_id)


@router.post("/{schedule_id}/deactivate", response_model=Schedule, summary="Deactivate a schedule")
def deactivate_schedule(schedule_id: str, env: EnvironmentDep, engine: EngineDep) -> Schedule:
    """Stop firing until activated again."""
    return engine.schedules.deactivate(env.id, schedule_id)
