"""Who is calling: the `Authorization: Bearer <key>` header resolved to an Environment, or,
on the account routes (projects, environments, keys), to the user of a personal access token.

An environment key alone decides the project and environment, so every run route takes the
Environment from here and passes its id to the engine; a route never accepts an environment
from the request. The two kinds of credential never stand in for each other: a personal access
token is no environment key, and an environment key opens no account route. This module never
stores or logs a key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.engine import TOKEN_PREFIX, Caller, Engine, Environment
from conveyor.errors import AuthenticationError

# auto_error=False: a missing header must give our JSON error shape (401), not FastAPI's 403
_bearer = HTTPBearer(auto_error=False, description="An environment's secret key, e.g. cv_dev_...")


async def get_engine(request: Request) -> Engine:
    """The engine `create_app` was given."""
    engine: Engine = request.app.state.engine
    return engine


async def environment_of_key(engine: Engine, key: str) -> Environment | None:
    """The environment of a live key, or None. Async with a cache: every request authenticates,
    and a thread hop per request costs more than the lookup; only a cache miss goes to the
    database, off the event loop."""
    known, environment = engine.environments.cached(key)
    if not known:
        environment = await run_in_threadpool(engine.environments.authenticate, key)
    return environment


def request_key(request: Request) -> str:
    """The bearer key a request authenticated with (checked already by `current_environment`)."""
    return request.headers.get("authorization", "").partition(" ")[2].strip()


async def current_environment(
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Environment:
    """The environment of the request's API key; AuthenticationError (401) when there is none."""
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>` with the environment's secret key "
            "(`conveyor dev` prints the dev key)"
        )
    key = credentials.credentials.strip()
    environment = await environment_of_key(engine, key)
    if environment is None:
        if key.startswith(TOKEN_PREFIX):
            raise AuthenticationError(
                "a personal access token (cv_pat_...) is not an environment key: "
                "send the environment's secret key (`conveyor keys show --project P --env dev`)"
            )
        raise AuthenticationError(
            "unknown API key: check the secret key of the environment you mean (it starts with cv_)"
        )
    return environment


async def current_user(
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The user of the request's personal access token; AuthenticationError (401) when there is
    none."""
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "missing personal access token: send `Authorization: Bearer cv_pat_...` "
            "(`conveyor login` stores one)"
        )
    token = credentials.credentials.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationError(
            "this route needs a personal access token (cv_pat_...), not an environment's secret key"
        )
    caller = await run_in_threadpool(engine.accounts.authenticate, token)
    if caller is None:
        raise AuthenticationError(
            "unknown or revoked personal access token; get a new one from your admin"
        )
    return caller


EngineDep = Annotated[Engine, Depends(get_engine)]
EnvironmentDep = Annotated[Environment, Depends(current_environment)]
CallerDep = Annotated[Caller, Depends(current_user)]
