"""The public surface is exactly what `conveyor.__all__` lists (the names of docs/tasks.md and
docs/triggering.md)."""

import conveyor

EXPECTED = {
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
}


def test_all_is_exactly_the_public_surface():
    assert set(conveyor.__all__) == EXPECTED
    import types

    public = {
        name
        for name, value in vars(conveyor).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= EXPECTED


def test_every_listed_name_exists():
    for name in conveyor.__all__:
        assert hasattr(conveyor, name), name


def test_every_error_derives_from_one_root():
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, conveyor.ConveyorError), name
