"""Bulk action routes: cancel or replay every run matching filters (`POST /api/v1/runs/bulk/
cancel|replay`, counted first with `.../bulk/count`), then follow the action, list them, or stop
one (`/api/v1/bulk-actions`).

An action is carried out by the engine's tick, a chunk of runs per transaction
(engine/bulk.py); these routes only make, read and stop actions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from conveyor.models import BulkAction, BulkFilters
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES, ErrorResponse

runs_router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/runs/bulk", tags=["bulk actions"], responses=API_RESPONSES
)
router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/bulk-actions",
    tags=["bulk actions"],
    responses=API_RESPONSES,
)


class BulkBody(BulkFilters):
    """`POST /api/v1/runs/bulk/cancel|replay`: the filters, and an optional idempotency key (the
    same key again returns the action it made)."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = Field(None, min_length=1, max_length=256)


class BulkCountBody(BulkFilters):
    """`POST /api/v1/runs/bulk/count`: how many runs an action would act on."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cancel", "replay"]


class BulkCount(BaseModel):
    kind: Literal["cancel", "replay"]
    matched: int = Field(description="Runs the action would act on now")


class BulkActionList(BaseModel):
    data: list[BulkAction]


KEY_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": BulkAction, "description": "The idempotency key's action, made before"},
    409: {"model": ErrorResponse, "description": "The idempotency key holds another action"},
}


def _filters(body: BulkFilters) -> BulkFilters:
    return BulkFilters.model_validate(body.model_dump(include=set(BulkFilters.model_fields)))


def _create(
    kind: Literal["cancel", "replay"],
    body: BulkBody,
    env_id: str,
    engine: EngineDep,
    response: Response,
) -> BulkAction:
    action = engine.bulk.create(env_id, kind, _filters(body), idempotency_key=body.idempotency_key)
    if action.is_cached:
        response.status_code = status.HTTP_200_OK
    return action


@runs_router.post(
    "/cancel",
    response_model=BulkAction,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel every run matching filters",
    responses=KEY_RESPONSES,
)
def bulk_cancel(
    body: BulkBody, env: EnvironmentDep, engine: EngineDep, response: Response
) -> BulkAction:
    """Start canceling the unfinished runs that match every filter given and were made by now;
    follow it at `GET /api/v1/bulk-actions/{id}`. At least one filter, or `all: true`."""
    return _create("cancel", body, env.id, engine, response)


@runs_router.post(
    "/replay",
    response_model=BulkAction,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Replay every run matching filters",
    responses=KEY_RESPONSES,
)
def bulk_replay(
    body: BulkBody, env: EnvironmentDep, engine: EngineDep, response: Response
) -> BulkAction:
    """Start replaying each run that matches every filter given and was made by now (its
    replays are not replayed again); follow it at `GET /api/v1/bulk-actions/{id}`."""
    return _create("replay", body, env.id, engine, response)


@runs_router.post("/count", response_model=BulkCount, summary="Count the runs a bulk action takes")
def bulk_count(body: BulkCountBody, env: EnvironmentDep, engine: EngineDep) -> BulkCount:
    """How many runs a bulk cancel (unfinished ones only) or replay with these filters would act
    on now; nothing is changed."""
    matched = engine.bulk.count(env.id, body.kind, _filters(body))
    return BulkCount(kind=body.kind, matched=matched)


@router.get("", response_model=BulkActionList, summary="List bulk actions")
def list_bulk_actions(
    env: EnvironmentDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Actions to return")] = 20,
) -> BulkActionList:
    """The environment's bulk actions, newest first."""
    return BulkActionList(data=engine.bulk.list(env.id, limit=limit))


@router.get("/{action_id}", response_model=BulkAction, summary="Retrieve a bulk action")
def retrieve_bulk_action(action_id: str, env: EnvironmentDep, engine: EngineDep) -> BulkAction:
    """The action with its progress: `total` runs matched, `done`, `skipped`, `failed`."""
    return engine.bulk.get(env.id, action_id)


@router.post(
    "/{action_id}/cancel",
    response_model=BulkAction,
    summary="Stop a bulk action",
    responses={409: {"model": ErrorResponse, "description": "The action has ended"}},
)
def stop_bulk_action(action_id: str, env: EnvironmentDep, engine: EngineDep) -> BulkAction:
    """Stop a running action: the runs it handled stay so, the others are left as they are."""
    return engine.bulk.stop(env.id, action_id)
