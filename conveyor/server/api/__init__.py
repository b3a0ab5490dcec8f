"""The HTTP API's routes, one module per resource: tasks, runs, queues, waitpoints.

`api_router` gathers them under /api/v1. Every route here needs an API key and works only
inside the key's environment.
"""

from fastapi import APIRouter

from conveyor.server.api import queues, runs, tasks, waitpoints, workers

api_router = APIRouter()
api_router.include_router(tasks.router)
api_router.include_router(runs.router)
api_router.include_router(queues.router)
api_router.include_router(waitpoints.router)
api_router.include_router(waitpoints.callback_router)
api_router.include_router(workers.router)

__all__ = ["api_router"]
