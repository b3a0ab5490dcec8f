"""Conveyor: durable background tasks for Python.

    from conveyor import task, queue, logger, wait, step

    @task(id="hello")
    async def hello(payload: dict, ctx) -> dict:
        logger.info("hello", name=payload["name"])
        return {"greeting": f"hello {payload['name']}"}

The names below are the whole public surface; everything else is internal.
"""

from conveyor import webhooks
from conveyor.client import AsyncClient, Client
from conveyor.client.default import auth, runs, tasks
from conveyor.errors import (
    AbortTaskRunError,
    ApiError,
    AuthenticationError,
    ConfigError,
    Conflict,
    ConveyorError,
    InvalidRequest,
    NotFound,
    PayloadError,
    RateLimited,
    TaskDefinitionError,
    TaskRunFailed,
)
from conveyor.models import (
    QueueInfo,
    RetryPolicy,
    Run,
    RunStatus,
    Schedule,
    ScheduledPayload,
    Token,
)
from conveyor.results import BatchHandle, BatchResult, Result, RunHandle
from conveyor.sdk.batch import batch
from conveyor.sdk.context import Context
from conveyor.sdk.hooks import hooks, middleware
from conveyor.sdk.idempotency import IdempotencyKey, idempotency_keys
from conveyor.sdk.logger import logger
from conveyor.sdk.metadata import metadata, streams, tags
from conveyor.sdk.queue import Queue, queue
from conveyor.sdk.retry import retry
from conveyor.sdk.schedules import schedules
from conveyor.sdk.step import step
from conveyor.sdk.task import BatchItem, Task, schema_task, task
from conveyor.sdk.usage import usage
from conveyor.sdk.wait import wait
from conveyor.version import __version__

__all__ = [
    "AbortTaskRunError",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BatchHandle",
    "BatchItem",
    "BatchResult",
    "Client",
    "ConfigError",
    "Conflict",
    "Context",
    "ConveyorError",
    "IdempotencyKey",
    "InvalidRequest",
    "NotFound",
    "PayloadError",
    "Queue",
    "QueueInfo",
    "RateLimited",
    "Result",
    "RetryPolicy",
    "Run",
    "RunHandle",
    "RunStatus",
    "Schedule",
    "ScheduledPayload",
    "Task",
    "TaskDefinitionError",
    "TaskRunFailed",
    "Token",
    "__version__",
    "auth",
    "batch",
    "hooks",
    "idempotency_keys",
    "logger",
    "metadata",
    "middleware",
    "queue",
    "retry",
    "runs",
    "schedules",
    "schema_task",
    "step",
    "streams",
    "tags",
    "task",
    "tasks",
    "usage",
    "wait",
    "webhooks",
]
