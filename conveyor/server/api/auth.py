"""Public access token routes: a backend holding the environment's secret key makes tokens for
a browser. A public token reads the runs it names; a trigger token triggers one task once.

Only an environment key makes them: a public or trigger token is refused here (403), so no token
ever makes another. Issuing and verifying are the engine's (conveyor/engine/auth.py); which routes
accept a token is conveyor/server/auth.py's. See docs/realtime.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from conveyor.engine import IssuedToken
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    ErrorResponse,
    IssuedTokenBody,
    PublicTokenBody,
    TriggerTokenBody,
)

router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/auth",
    tags=["auth"],
    responses={
        **API_RESPONSES,
        403: {"model": ErrorResponse, "description": "A public token cannot make tokens"},
    },
)


def _issued(issued: IssuedToken) -> IssuedTokenBody:
    return IssuedTokenBody(
        token=issued.token, expires_at=datetime.fromtimestamp(issued.expires_at, tz=UTC)
    )


@router.post(
    "/public-tokens",
    response_model=IssuedTokenBody,
    status_code=status.HTTP_201_CREATED,
    summary="Create a public access token",
)
def create_public_token(
    body: PublicTokenBody, env: EnvironmentDep, engine: EngineDep
) -> IssuedTokenBody:
    """A token reading the runs `read` names (by id, tag, batch or task; at least one), for
    `expires_in` (15 minutes by default, at most 30 days). It opens `GET /api/v1/runs/{id}`
    and the realtime routes for those runs, from a browser; nothing else."""
    read = body.read.model_dump(exclude_none=True)
    return _issued(engine.auth.create_public_token(env.id, read, body.expires_in))


@router.post(
    "/trigger-tokens",
    response_model=IssuedTokenBody,
    status_code=status.HTTP_201_CREATED,
    summary="Create a one-use trigger token",
)
def create_trigger_token(
    body: TriggerTokenBody, env: EnvironmentDep, engine: EngineDep
) -> IssuedTokenBody:
    """A token triggering `task` once (`POST /api/v1/tasks/{task}/trigger`), for `expires_in`
    (15 minutes by default, at most 30 days). The trigger's answer carries a public token
    reading the run it made."""
    return _issued(engine.auth.create_trigger_token(env.id, body.task, body.expires_in))
