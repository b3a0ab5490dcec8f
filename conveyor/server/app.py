"""`create_app(engine)`: the FastAPI application serving the HTTP API over one Engine.

The app is stateless apart from the engine it is given, so several servers can run over one
database. Routes are plain `def` functions: the engine is synchronous and FastAPI runs them
in its threadpool, so a slow transaction never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import FastAPI

from conveyor.engine import Engine, Wakeups
from conveyor.server.api import api_router
from conveyor.server.browser import router as browser_router
from conveyor.server.cors import PublicCors, origins_from_env
from conveyor.server.errors import install_error_handlers
from conveyor.server.metrics import Metrics, metrics_router
from conveyor.server.metrics import token_from_env as metrics_token_from_env
from conveyor.server.ratelimit import RateLimit, RateLimitMiddleware, rate_limit_from_env
from conveyor.server.realtime import RunFeed
from conveyor.server.schemas import ErrorResponse, Health

API_DESCRIPTION = """\
Trigger tasks and inspect, cancel and replay runs of a Conveyor environment.

Every `/api/v1` route needs `Authorization: Bearer <key>`; the key decides the project and
environment. A public access token (`/api/v1/auth`) stands in for it on the few routes a browser
may call: reading the runs it names, or triggering its task once.
Errors are `{"error": {"code": ..., "message": ...}}` with a 4xx status.
A key over its rate limit gets `429` (`rate_limited`) with `Retry-After` in seconds; the worker
protocol (`/api/v1/workers`) is not limited.
"""


def create_app(
    engine: Engine,
    *,
    title: str = "Conveyor",
    rate_limit: RateLimit | Literal[False] | None = None,
    cors_origins: Sequence[str] | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """The API app over `engine`. Other parts add their own routers to it and share the JSON
    error handling and the engine's wake-ups (`app.state.wakeups`) installed here: the
    platform mounts the web dashboard at `/` (conveyor/dashboard's `mount_dashboard`).
    `rate_limit` caps requests per API key (conveyor/server/ratelimit.py): None takes
    CONVEYOR_RATE_LIMIT or the default, False turns it off. `cors_origins` may call the routes
    public access tokens open from a browser (conveyor/server/cors.py): None takes
    CONVEYOR_CORS_ORIGINS, and no origin means none. `GET /metrics` needs `metrics_token`
    (None takes CONVEYOR_METRICS_TOKEN) or, without one, a request from this machine
    (conveyor/server/metrics.py)."""
    from conveyor.version import __version__

    limit = rate_limit_from_env() if rate_limit is None else rate_limit
    origins = origins_from_env() if cors_origins is None else tuple(cors_origins)
    # no redirect from `/api/v1/tasks/` to `/api/v1/tasks`: a path whose last parameter is
    # empty names nothing, and answering it with the list a client did not ask for misleads
    app = FastAPI(
        title=title, version=__version__, description=API_DESCRIPTION, redirect_slashes=False
    )
    app.state.engine = engine
    app.state.wakeups = Wakeups(engine)
    app.state.run_feed = RunFeed(engine)  # what run subscribers watch, read once for all
    app.state.metrics = metrics = Metrics(engine)
    install_error_handlers(app)
    if limit:
        app.add_middleware(RateLimitMiddleware, limit=limit)
    if origins:  # outermost: a refusal (429, 401) reaches the page too, so it can tell why
        app.add_middleware(PublicCors, origins=origins)
    app.include_router(api_router)
    app.include_router(browser_router)  # /sdk/realtime.js: the browser client, no key
    token = metrics_token_from_env() if metrics_token is None else (metrics_token or None)
    app.include_router(metrics_router(metrics, token))

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness check")
    def healthz() -> Health:
        """Answers while the server process is up, whether or not its database answers (a
        restart would not bring the database back); needs no key."""
        return Health(ok=True)

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        summary="Readiness check",
        responses={503: {"model": ErrorResponse, "description": "The database cannot be reached"}},
    )
    def readyz() -> Health:
        """200 when the server can serve requests: its database answers. 503 `unavailable` with
        Retry-After while it cannot be reached (send traffic elsewhere meanwhile); needs no key."""
        engine.store.check()
        return Health(ok=True)

    return app
