"""Waitpoint token routes: create, list, retrieve and complete tokens, and the signed callback.

The callback URL (`/api/v1/waitpoints/tokens/{id}/callback/{signature}`) needs no key: the
signature, an HMAC of the token id with a secret of the database, is what proves the caller
was given the URL. Anything else here needs the environment's key.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from conveyor.durations import parse_duration
from conveyor.errors import InvalidRequest, NotFound, PayloadError
from conveyor.models import Token
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    CompleteTokenBody,
    CreateTokenBody,
    ErrorResponse,
    TokenList,
)

router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/waitpoints/tokens",
    tags=["waitpoints"],
    responses=API_RESPONSES,
)
TOKEN_DONE_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The token already completed or timed out"},
}


@router.post("", response_model=Token, status_code=201, summary="Create a token")
def create_token(body: CreateTokenBody, env: EnvironmentDep, engine: EngineDep) -> Token:
    """A token runs can wait on with `wait.for_token`. The same `idempotency_key` gives the same
    token; `timeout` (seconds or "24h") ends waits on it with ok=false."""
    try:
        timeout = parse_duration(body.timeout, name="timeout") if body.timeout is not None else None
        key_ttl = (
            parse_duration(body.idempotency_key_ttl, name="idempotency_key_ttl")
            if body.idempotency_key_ttl is not None
            else None
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return Token.model_validate(
        engine.waitpoints.create_token(
            env.id,
            timeout=timeout,
            idempotency_key=body.idempotency_key,
            tags=body.tags,
            idempotency_key_ttl=key_ttl,
        )
    )


TokenStatusFilter = Literal[
    "PENDING", "COMPLETED", "TIMED_OUT", "pending", "completed", "timed_out"
]


@router.get("", response_model=TokenList, summary="List tokens")
def list_tokens(
    env: EnvironmentDep,
    engine: EngineDep,
    status: TokenStatusFilter | None = Query(None, description="Only tokens in this status"),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(
        None, pattern=r"^token_[0-9a-z]{1,40}$", description="`next_cursor` of the previous page"
    ),
) -> TokenList:
    tokens, next_cursor = engine.waitpoints.list_tokens(
        env.id, status=status.upper() if status else None, limit=limit, cursor=cursor
    )
    return TokenList(data=[Token.model_validate(t) for t in tokens], next_cursor=next_cursor)


@router.get("/{token_id}", response_model=Token, summary="Retrieve a token")
def retrieve_token(token_id: str, env: EnvironmentDep, engine: EngineDep) -> Token:
    return Token.model_validate(engine.waitpoints.get_token(env.id, token_id))


@router.post(
    "/{token_id}/complete",
    response_model=Token,
    summary="Complete a token",
    responses=TOKEN_DONE_RESPONSE,
)
def complete_token(
    token_id: str, body: CompleteTokenBody, env: EnvironmentDep, engine: EngineDep
) -> Token:
    """Complete the token with `data`; every run waiting on it resumes with ok=true and `data`
    as output. Completing a token twice is a 409."""
    return Token.model_validate(engine.waitpoints.complete_token(env.id, token_id, body.data))


# The callback carries no key: it cannot be unauthorized or rate limited.
callback_router = APIRouter(
    route_class=ApiRoute,
    tags=["waitpoints"],
    responses={
        **TOKEN_DONE_RESPONSE,
        404: {
            "model": ErrorResponse,
            "description": "No token at this URL (an unknown token or a wrong signature)",
        },
        422: {"model": ErrorResponse, "description": "The body is not JSON (`payload_invalid`)"},
    },
)


@callback_router.post(
    "/api/v1/waitpoints/tokens/{token_id}/callback/{signature}",
    response_model=Token,
    summary="Complete a token from its callback URL (no key)",
)
async def token_callback(token_id: str, signature: str, request: Request) -> Token:
    """POST any JSON body to a token's `url` to complete it with that body as data."""
    engine = request.app.state.engine
    if not engine.waitpoints.check_token_signature(token_id, signature):
        raise NotFound("no token at this URL")
    raw = await request.body()
    data: Any = None
    if raw.strip():
        import json

        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise PayloadError(f"the callback body is not JSON: {exc}") from exc
    env_id = engine.waitpoints.token_environment(token_id)
    return Token.model_validate(engine.waitpoints.complete_token(env_id, token_id, data))
