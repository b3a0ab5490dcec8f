"""The server: a FastAPI app with the HTTP API (`api/`, one module per resource), API-key
authentication (`auth`) and the JSON error shape (`errors`).

The server holds no state of its own: every request becomes engine calls, so several
servers can share one database. It never writes run state itself.
"""

from conveyor.server.app import create_app

__all__ = ["create_app"]
