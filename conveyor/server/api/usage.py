"""The usage route: the compute seconds the key's environment used in a period."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from conveyor.models import Usage
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/usage", tags=["usage"], responses=API_RESPONSES
)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@router.get("", response_model=Usage, summary="Compute used in a period")
def read_usage(
    env: EnvironmentDep,
    engine: EngineDep,
    since: Annotated[
        datetime | None,
        Query(description="Start of the period (ISO 8601; default: 30 days before `until`)"),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="End of the period (ISO 8601; default: now)")
    ] = None,
) -> Usage:
    """The compute seconds of the attempts that ended in the period, per task and machine
    preset: the time each attempt held a slot, waits that suspended it excluded."""
    return engine.usage.period(env.id, _epoch(since), _epoch(until))
