"""Who is calling: the `Authorization: Bearer <key>` header resolved to an Environment.

The key alone decides the project and environment, so every route takes the Environment
from here and passes its id to the engine; a route never accepts an environment from the
request. This module never stores or logs a key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.engine.engine import Engine, Environment
from conveyor.errors import AuthenticationError

# auto_error=False: a missing header must give our JSON error shape (401), not FastAPI's 403
_bearer = HTTPBearer(auto_error=False, description="An environment's secret key, e.g. cv_dev_...")


async def get_engine(request: Request) -> Engine:
    """The engine `create_app` was given."""
    engine: Engine = request.app.state.engine
    return engine


async def current_environment(
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Environment:
    """The environment of the request's API key; AuthenticationError (401) when there is none."""
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>` with the environment's secret key "
            "(`conveyor dev` prints the dev key)")
    key = credentials.credentials.strip()
    # async with a cache: every request authenticates, and a thread hop per request costs more
    # than the lookup; only a cache miss goes to the database, off the event loop
    known, environment = engine.cached_environment(key)
    if not known:
        environment = await run_in_threadpool(engine.authenticate, key)
    if environment is None:
        raise AuthenticationError(
            "unknown API key: check the secret key of the environment you mean (it starts with cv_)")
    return environment


EngineDep = Annotated[Engine, Depends(get_engine)]
EnvironmentDep = Annotated[Environment, Depends(current_environment)]
