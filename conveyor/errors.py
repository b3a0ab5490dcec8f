"""Every error Conveyor raises, in one tree.

    ConveyorError                     root: catch this to catch anything of ours
    ├── ConfigError                   the project's config is missing or wrong
    ├── TaskDefinitionError           a task is defined wrongly (duplicate id, bad option)
    │   └── TaskLoadError             the task code could not be imported
    ├── PayloadError                  a payload or output is not JSON, or fails its schema
    ├── NotFound                      a run, task or queue does not exist (in this environment)
    ├── Conflict                      the request contradicts the current state (cancel a
    │                                 finished run)
    │   └── StaleAttempt              a worker spoke for an attempt that no longer holds its run
    ├── InvalidRequest                a request is malformed or an option is out of range
    │   └── Forbidden                 the key is valid but not for this (a deploy with another
    │                                 environment's key)
    ├── AuthenticationError           the API key is missing, unknown or revoked
    ├── StoreUnavailable              the database cannot be reached right now (503: try again)
    │   └── TransactionConflict       the database undid a transaction to break a deadlock
    ├── RateLimited                   the API key made too many requests; retry later
    ├── ApiError                      the server answered with an error the client cannot map
    └── TaskRunError                  raised inside task code to steer the run
        ├── AbortTaskRunError         fail the run now, without retrying
        └── TaskRunFailed             `Result.unwrap()` on a run that did not complete

Each class's docstring is its default message, so the text a user reads is the
documentation. Every error carries a short machine `code` used by the HTTP API
(`{"error": {"code": ..., "message": ...}}`) and an HTTP `status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError


class ConveyorError(Exception):
    """Something went wrong in Conveyor."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.__class__.__name__).strip()
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class ConfigError(ConveyorError):
    """The Conveyor config is invalid. Check [tool.conveyor] in pyproject.toml or conveyor.toml."""

    code = "config_invalid"


class TaskDefinitionError(ConveyorError):
    """A task is defined wrongly."""

    code = "task_definition_invalid"


class TaskLoadError(TaskDefinitionError):
    """The task code could not be imported."""

    code = "task_load_failed"


class PayloadError(ConveyorError):
    """The payload is not valid for this task."""

    code = "payload_invalid"
    status = 422


class InvalidRequest(ConveyorError):
    """The request is malformed."""

    code = "invalid_request"


class Forbidden(InvalidRequest):
    """This key may not do that: it belongs to another environment."""

    code = "forbidden"
    status = 403


class NotFound(ConveyorError):
    """Nothing by that id exists in this environment."""

    code = "not_found"
    status = 404


class Conflict(ConveyorError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class StaleAttempt(Conflict):
    """This attempt no longer holds its run: the run was canceled or has ended, or it was taken
    back from a worker that went silent and may run elsewhere. Nothing was changed; the attempt
    is stopped."""

    code = "attempt_stale"


class AuthenticationError(ConveyorError):
    """The API key is missing, unknown or revoked. Pass it as `Authorization: Bearer <key>`."""

    code = "unauthorized"
    status = 401


class StoreUnavailable(ConveyorError):
    """The database cannot be reached right now; nothing was changed. Try again shortly."""

    code = "unavailable"
    status = 503
    retry_after = 1


class TransactionConflict(StoreUnavailable):
    """The database undid this change to break a deadlock with another; nothing was changed.
    Try again."""

    code = "unavailable"


class RateLimited(ConveyorError):
    """Too many requests with this API key. The client already waited and retried; slow down,
    or raise the server's CONVEYOR_RATE_LIMIT."""

    code = "rate_limited"
    status = 429


class ApiError(ConveyorError):
    """The Conveyor server answered with an error."""

    code = "api_error"

    def __init__(
        self, message: str | None = None, *, status: int = 500, code: str = "api_error"
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.api_code = code


class TaskRunError(ConveyorError):
    """Raised inside task code to steer the run."""


class AbortTaskRunError(TaskRunError):
    """The run was aborted by its task. It is not retried."""

    code = "aborted"


class TaskRunFailed(TaskRunError):
    """A child run did not complete; `error` holds what it failed with."""

    code = "task_run_failed"

    def __init__(
        self, message: str | None = None, *, run_id: str = "", task_id: str = "", error: Any = None
    ) -> None:
        super().__init__(message or f"run {run_id} of task {task_id!r} did not complete")
        self.run_id = run_id
        self.task_id = task_id
        self.error = error


_NOT_AN_OBJECT = ("model_type", "model_attributes_type", "dict_type", "dataclass_type")


def problem_of(error: Mapping[str, Any]) -> str:
    """What is wrong, in one validation error of pydantic, worded for the person who wrote the
    value (the API's 422s and the client's and CLI's errors say it alike)."""
    kind = error.get("type")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        # (a model's extra field, or a dataclass's: the protocol's durable calls are dataclasses)
        return "unknown field; check its spelling"
    if kind == "missing":
        return "required"
    if kind in _NOT_AN_OBJECT:
        given = error.get("input")
        return f"must be an object of fields, not {type(given).__name__} {given!r:.40}"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def validation_summary(exc: ValidationError, limit: int = 3) -> str:
    """The first problems of a pydantic ValidationError as `where: what; ...` (a problem of the
    whole value has no `where`), for messages."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {problem_of(error)}" if where else problem_of(error))
    return "; ".join(parts)
