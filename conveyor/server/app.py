"""`create_app(engine)`: the FastAPI application serving the HTTP API over one Engine.

The app is stateless apart from the engine it is given, so several servers can run over one
database. Routes are plain `def` functions: the engine is synchronous and FastAPI runs them
in its threadpool, so a slow transaction never blocks the event loop.
"""

from __future__ import annotations

from fastapi import FastAPI

from conveyor.engine.engine import Engine
from conveyor.server.api import api_router
from conveyor.server.errors import install_error_handlers
from conveyor.server.schemas import Health
from conveyor.server.wakeups import Wakeups

API_DESCRIPTION = """\
Trigger tasks and inspect, cancel and replay runs of a Conveyor environment.

Every `/api/v1` route needs `Authorization: Bearer <key>`; the key decides the project and
environment. Errors are `{"error": {"code": ..., "message": ...}}` with a 4xx status.
"""


def create_app(engine: Engine, *, title: str = "Conveyor") -> FastAPI:
    """The API app over `engine`. Other parts (dashboard, worker protocol) add their own
    routers to it; they share the JSON error handling installed here."""
    from conveyor.version import __version__

    app = FastAPI(title=title, version=__version__, description=API_DESCRIPTION)
    app.state.engine = engine
    app.state.wakeups = Wakeups(engine)
    install_error_handlers(app)
    app.include_router(api_router)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness check")
    def healthz() -> Health:
        """Answers while the server process is up; needs no key."""
        return Health(ok=True)

    return app
