"""The HTTP API's routes, one module per resource: tasks, batches, runs, queues, waitpoints,
workers, deployments, schedules, bulk actions, usage, environment variables (envvars), public
access tokens (auth), alerts and projects.

`api_router` gathers them under /api/v1. Every route but the projects ones needs an
environment's key and works only inside the key's environment; the projects routes (and
/api/v1/me) need a personal access token instead.
"""

from fastapi import APIRouter

from conveyor.server.api import (
    alerts,
    auth,
    batches,
    bulk,
    deployments,
    envvars,
    projects,
    queues,
    realtime,
    runs,
    schedules,
    tasks,
    usage,
    waitpoints,
    workers,
)

api_router = APIRouter()
api_router.include_router(tasks.router)
api_router.include_router(batches.router)
api_router.include_router(realtime.router)  # before runs: /runs/subscribe is no run id
api_router.include_router(bulk.runs_router)  # before runs: /runs/bulk/... is no run id
api_router.include_router(runs.router)
api_router.include_router(bulk.router)
api_router.include_router(queues.router)
api_router.include_router(waitpoints.router)
api_router.include_router(waitpoints.callback_router)
api_router.include_router(workers.router)
api_router.include_router(deployments.router)
api_router.include_router(schedules.router)
api_router.include_router(usage.router)
api_router.include_router(envvars.router)
api_router.include_router(alerts.router)
api_router.include_router(auth.router)
api_router.include_router(projects.me_router)
api_router.include_router(projects.router)

__all__ = ["api_router"]
