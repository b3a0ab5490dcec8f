"""Who is calling: the `Authorization: Bearer <key>` header resolved to an Environment, or,
on the account routes (projects, environments, keys), to the user of a personal access token,
or, on the few routes a browser may call, to a public access token.

An environment key alone decides the project and environment, so every run route takes the
Environment from here and passes its id to the engine; a route never accepts an environment
from the request. The kinds of credential never stand in for each other: a personal access
token is no environment key, an environment key opens no account route, and a public access
token (a signed JWT, conveyor/engine/auth.py) opens only the routes of PUBLIC_ROUTES:

    ReaderDep      an environment key, or a public token: `reader.run(engine, run_id)` is a run
                   it may read (403 otherwise); `check_tag`, `check_batch` for subscriptions
    TriggererDep   an environment key, or a trigger token of the path's task
    EnvironmentDep an environment key only (every other route)

This module never stores or logs a key or a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.engine import (
    TOKEN_PREFIX,
    Caller,
    Engine,
    Environment,
    PublicToken,
    looks_like_token,
)
from conveyor.errors import AuthenticationError, Forbidden, NotFound
from conveyor.models import Run

# The routes a public access token may open, as (method, path) of the OpenAPI document: reading
# runs (public tokens) and triggering (trigger tokens). Browsers may call them from the origins
# the server allows (CORS, conveyor/server/cors.py); every other route refuses a token (403).
READ_ROUTES = (
    ("GET", "/api/v1/runs/{run_id}"),
    ("GET", "/api/v1/runs/{run_id}/subscribe"),
    ("GET", "/api/v1/runs/subscribe"),
    ("GET", "/api/v1/runs/{run_id}/streams/{stream}"),
)
TRIGGER_ROUTES = (("POST", "/api/v1/tasks/{task_id}/trigger"),)
PUBLIC_ROUTES = READ_ROUTES + TRIGGER_ROUTES

ONLY_PUBLIC_ROUTES = (
    "a public token only reads the runs it names (GET /api/v1/runs/{id} and the realtime "
    "routes), and a trigger token only triggers its task once (POST /api/v1/tasks/{id}/trigger)"
)

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


def _credential(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>` with the environment's secret key "
            "(`conveyor dev` prints the dev key)"
        )
    return credentials.credentials.strip()


async def verify_token(engine: Engine, token: str) -> PublicToken:
    """What a public access token allows; AuthenticationError (401) when it is malformed,
    forged, of another database or expired. Checking a signature needs no query once the secret
    is known (the platform loads it at start)."""
    if engine.auth.has_secret:
        return engine.auth.verify(token)
    return await run_in_threadpool(engine.auth.verify, token)


async def current_environment(
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Environment:
    """The environment of the request's API key; AuthenticationError (401) when there is none,
    Forbidden (403) for a valid public access token."""
    key = _credential(credentials)
    if looks_like_token(key):
        await verify_token(engine, key)  # an expired or forged token: 401 as any bad key
        raise Forbidden(f"{ONLY_PUBLIC_ROUTES}; this route needs the environment's secret key")
    return await _environment(engine, key)


async def _environment(engine: Engine, key: str) -> Environment:
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


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads runs: an environment's key (every run of its environment; `token` is None) or a
    public token (the runs it names, in the environment it was made for)."""

    env_id: str
    token: PublicToken | None = None

    def may_read(self, run: Run) -> bool:
        return self.token is None or self.token.may_read(run)

    def run(self, engine: Engine, run_id: str, *, with_attempts: bool = False) -> Run:
        """The run, if this reader may read it. NotFound (404) for a key, or for a token naming
        the run by id; Forbidden (403) for a token not reading it, whether it exists or not (a
        token must not tell which runs exist). Blocking: call it from a thread."""
        token = self.token
        if token is None or run_id in token.runs:
            return engine.runs.get(self.env_id, run_id, with_attempts=with_attempts)
        try:
            run = engine.runs.get(self.env_id, run_id, with_attempts=with_attempts)
        except NotFound:
            run = None
        if run is None or not token.may_read(run):
            raise Forbidden(
                f"this public token does not read run {run_id}: a public token only reads the "
                f"runs it names ({token.describe()})"
            )
        return run

    def check_tag(self, tag: str) -> None:
        """Forbidden (403) unless this reader reads every run carrying `tag`."""
        if self.token is not None and tag not in self.token.tags:
            raise Forbidden(
                f"this public token does not read the runs tagged {tag!r} ({self.token.describe()})"
            )

    def check_batch(self, batch_id: str) -> None:
        """Forbidden (403) unless this reader reads every run of batch `batch_id`."""
        if self.token is not None and batch_id not in self.token.batches:
            raise Forbidden(
                f"this public token does not read batch {batch_id} ({self.token.describe()})"
            )


async def current_reader(
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Reader:
    """The reader of the request: its environment key, or a public token (401 when neither
    is valid; 403 for a trigger token)."""
    key = _credential(credentials)
    if looks_like_token(key):
        token = await verify_token(engine, key)
        if token.kind != "public":
            raise Forbidden(
                f"{ONLY_PUBLIC_ROUTES}; reading runs needs a public token or the secret key"
            )
        return Reader(token.env_id, token)
    return Reader((await _environment(engine, key)).id)


@dataclass(frozen=True, slots=True)
class Triggerer:
    """Who triggers: an environment's key (`token` None), or a trigger token, used up by the
    trigger that makes its run (engine.tasks.trigger(..., token=...))."""

    env_id: str
    token: PublicToken | None = None


async def current_triggerer(
    task_id: str,
    engine: Annotated[Engine, Depends(get_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Triggerer:
    """The environment key of the request, or a trigger token of `task_id` (401 when neither
    is valid; 403 for a public token or a trigger token of another task)."""
    key = _credential(credentials)
    if looks_like_token(key):
        token = await verify_token(engine, key)
        if not token.may_trigger(task_id):
            raise Forbidden(
                f"{ONLY_PUBLIC_ROUTES}; this token allows {token.describe()}, not triggering "
                f"{task_id!r}"
            )
        return Triggerer(token.env_id, token)
    return Triggerer((await _environment(engine, key)).id)


EngineDep = Annotated[Engine, Depends(get_engine)]
EnvironmentDep = Annotated[Environment, Depends(current_environment)]
CallerDep = Annotated[Caller, Depends(current_user)]
ReaderDep = Annotated[Reader, Depends(current_reader)]
TriggererDep = Annotated[Triggerer, Depends(current_triggerer)]
