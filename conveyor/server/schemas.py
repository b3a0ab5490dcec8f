"""The HTTP API's wire format: request bodies and response envelopes.

Resources themselves (Run, TaskDefinition, QueueInfo, LogLine) are the domain models of
`conveyor.models`, shown as they are; this module only adds what exists on the wire alone:
bodies, `{data: [...]}` envelopes and the error shape. Models here validate; they do no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from conveyor.durations import DURATION_PATTERN, parse_duration
from conveyor.engine import MAX_BATCH, MAX_TOKEN_EXPIRY
from conveyor.models import (
    CatchUp,
    KeyTtl,
    LogLine,
    Overlap,
    Project,
    ProjectEnvironment,
    QueueInfo,
    Run,
    Schedule,
    TaskDefinition,
    Timeout,
    Token,
    TriggerOptions,
    WireModel,
)


class TriggerBody(WireModel):
    """`POST /api/v1/tasks/{task_id}/trigger`: the payload (any JSON) and the trigger options."""

    # a misspelt top-level key ("option") must fail loudly, not trigger without its options
    model_config = ConfigDict(extra="forbid")

    payload: Any = None
    options: TriggerOptions = Field(default_factory=lambda: TriggerOptions.model_validate({}))


class ResetKeyBody(WireModel):
    """`POST /api/v1/tasks/{task_id}/idempotency-keys/reset`: the key to release."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=2048)


class KeyReset(BaseModel):
    released: bool  # whether a run held the key


class BatchBody(WireModel):
    """`POST /api/v1/tasks/{task_id}/batch`: 1 to 1,000 items, each created or none. With
    `idempotency_key`, a later batch with the key gets this batch back (held
    `idempotency_key_ttl`, 30 days by default)."""

    model_config = ConfigDict(extra="forbid")

    items: list[TriggerBody] = Field(min_length=1, max_length=MAX_BATCH)
    idempotency_key: str | None = Field(None, min_length=1, max_length=2048)
    idempotency_key_ttl: KeyTtl = None


class BatchItemByTask(TriggerBody):
    """One item of `POST /api/v1/batches`: the task of its run, its payload and options."""

    task: str = Field(min_length=1, max_length=128)


class BatchByTaskBody(WireModel):
    """`POST /api/v1/batches`: 1 to 1,000 items, each of its own task, created or none;
    `idempotency_key` as for a batch of one task."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemByTask] = Field(min_length=1, max_length=MAX_BATCH)
    idempotency_key: str | None = Field(None, min_length=1, max_length=2048)
    idempotency_key_ttl: KeyTtl = None


class ReplayBody(WireModel):
    """`POST /api/v1/runs/{id}/replay`: without `payload` the replay reuses the run's payload."""

    model_config = ConfigDict(extra="forbid")

    payload: Any = None


class ConcurrencyBody(WireModel):
    """`POST /api/v1/queues/{name}/concurrency`: a new limit, or null for none."""

    model_config = ConfigDict(extra="forbid")

    # required although nullable: an empty body must not silently lift the limit
    concurrency_limit: int | None = Field(..., ge=0, le=100_000)


class Triggered(BaseModel):
    """A run a trigger created, or the existing run its idempotency key points at (`is_cached`)."""

    id: str
    task_id: str
    is_cached: bool = False
    public_access_token: str | None = Field(
        None,
        description="With a trigger token only: a public token reading the run this trigger "
        "made (for 24 hours); null otherwise, and for a run an idempotency key already held",
    )


class BatchTriggered(BaseModel):
    """The runs of a batch, one per item, in input order. `is_cached`: the batch an
    idempotency key held, returned as it is (no run made)."""

    batch_id: str
    runs: list[Triggered]
    is_cached: bool = False


class TaskList(BaseModel):
    data: list[TaskDefinition]


class RunList(BaseModel):
    """One page of runs, newest first; pass `next_cursor` back as `cursor` for the next page."""

    data: list[Run]
    next_cursor: str | None = None


class LogList(BaseModel):
    data: list[LogLine]


class QueueList(BaseModel):
    data: list[QueueInfo]


class Health(BaseModel):
    ok: bool = True


class ErrorDetail(BaseModel):
    code: str = Field(
        description="A short machine code: not_found, unauthorized, payload_invalid, ..."
    )
    message: str = Field(description="What went wrong and what to do about it.")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    error: ErrorDetail


def triggered(run: Run) -> Triggered:
    return Triggered(id=run.id, task_id=run.task_id, is_cached=run.is_cached)


def batch_triggered(batch_id: str, runs: list[Run], is_cached: bool) -> BatchTriggered:
    return BatchTriggered(
        batch_id=batch_id, runs=[triggered(run) for run in runs], is_cached=is_cached
    )


# Documented on every authenticated route so the OpenAPI document shows the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Malformed request (bad JSON, unknown filter value)",
    },
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    404: {"model": ErrorResponse, "description": "No such task, run or queue in this environment"},
    422: {
        "model": ErrorResponse,
        "description": "The body or a parameter is invalid; the message names it",
    },
    503: {
        "model": ErrorResponse,
        "description": "The database is unreachable for a moment (`unavailable`); "
        "nothing was changed, send it again after Retry-After",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
}
RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "The key is over its rate limit (`rate_limited`); retry later",
        "headers": {
            "Retry-After": {
                "description": "Seconds until a request fits in the limit again",
                "schema": {"type": "integer"},
            }
        },
    },
}
# Routes of applications (not the worker protocol) count against their key's rate limit.
API_RESPONSES: dict[int | str, dict[str, Any]] = {**ERROR_RESPONSES, **RATE_LIMITED_RESPONSE}
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The run's state does not allow this"},
}
# The routes a public access token opens: a token that may not do this one gets 403.
PUBLIC_TOKEN_RESPONSE: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "A public access token that does not allow this (another run, task or kind)",
    },
}
# The batch routes (of one task, of several): what an idempotency key may answer instead of 201.
BATCH_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": BatchTriggered,
        "description": "The idempotency key already has a batch; that batch is returned",
    },
    409: {
        "model": ErrorResponse,
        "description": "The idempotency key holds a batch of other tasks or another size",
    },
}


class CreateTokenBody(WireModel):
    """Body of POST /api/v1/waitpoints/tokens."""

    model_config = ConfigDict(extra="forbid")

    timeout: Timeout = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=2048)
    tags: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        None, max_length=10
    )
    idempotency_key_ttl: KeyTtl = None


class CompleteTokenBody(WireModel):
    """Body of POST /api/v1/waitpoints/tokens/{id}/complete."""

    model_config = ConfigDict(extra="forbid")

    data: Any = None


class TokenList(BaseModel):
    data: list[Token]
    next_cursor: str | None = None


# -- accounts: projects, environments and keys (personal access token routes) ----------------


# not blank: a character other than these (engine/accounts.py BLANK)
NOT_BLANK = r"[^ \t\n\r\f\v]"


class CreateProjectBody(WireModel):
    """`POST /api/v1/projects`: a name; the slug is made from it unless given."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=NOT_BLANK,
        description="Any text that is not blank; the slug is made from it unless given",
    )
    slug: str | None = Field(
        None,
        min_length=1,
        max_length=60,
        pattern="[A-Za-z0-9]",
        description="Letters, digits and dashes (at least one letter or digit); default: made "
        "from the name",
    )
    organization: str | None = Field(
        None, description="Slug of the owning organization; needed only when you belong to several"
    )


class PreviewBody(WireModel):
    """`POST /api/v1/projects/{ref}/environments`: the git branch of a preview environment."""

    model_config = ConfigDict(extra="forbid")

    branch: str = Field(
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK,
        description="The git branch (not blank)",
    )


class ProjectList(BaseModel):
    data: list[Project]


class EnvironmentList(BaseModel):
    data: list[ProjectEnvironment]


# Documented on every route authenticated by a personal access token.
ACCOUNT_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    **RATE_LIMITED_RESPONSE,
    401: {
        "model": ErrorResponse,
        "description": "Missing, unknown or revoked personal access token "
        "(an environment key is refused here)",
    },
    404: {
        "model": ErrorResponse,
        "description": "No such project, organization or environment among yours",
    },
}


# -- schedules --------------------------------------------------------------------------------


class CreateScheduleBody(WireModel):
    """Body of POST /api/v1/schedules: an imperative schedule of a scheduled task."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=128, description="The id of a scheduled task")
    cron: str = Field(
        min_length=1,
        max_length=200,
        description='Five fields ("0 9 * * 1") or a shorthand such as "@daily"',
    )
    timezone: str = Field("UTC", min_length=1, max_length=64, description="An IANA time zone")
    external_id: str | None = Field(
        None, min_length=1, max_length=256, description="Yours: a customer or user id"
    )
    deduplication_key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Creating again with the same key updates that schedule instead",
    )
    active: bool = True
    catch_up: CatchUp = "latest"
    overlap: Overlap = "allow"


class UpdateScheduleBody(WireModel):
    """Body of PUT /api/v1/schedules/{id}: the settings to change; those left out stay."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, min_length=1, max_length=128)
    cron: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    external_id: str | None = Field(None, min_length=1, max_length=256)
    catch_up: CatchUp | None = None
    overlap: Overlap | None = None


class ScheduleList(BaseModel):
    data: list[Schedule]
    next_cursor: str | None = None


# -- public access tokens (docs/realtime.md) ---------------------------------------------------

ScopeNames = list[Annotated[str, Field(min_length=1, max_length=256)]] | None
_EXPIRES_IN = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "minimum": 1, "maximum": MAX_TOKEN_EXPIRY},
            {"type": "string", "pattern": DURATION_PATTERN},
            {"type": "null"},
        ],
        "description": 'Seconds, or a duration such as "15m", "1h", "7d": from 1 second to '
        "30 days; 15 minutes when left out",
    }
)


def _expires_in(value: Any) -> Any:
    # its form here (pydantic would read `true` as 1 second); its range is the engine's
    if value is not None:
        parse_duration(value, name="expires_in")
    return value


ExpiresIn = Annotated[float | str | None, BeforeValidator(_expires_in), _EXPIRES_IN]


class PublicTokenRead(WireModel):
    """What a public token reads: runs by id, runs carrying a tag, runs of a batch, runs of a
    task. At least one name in all."""

    model_config = ConfigDict(extra="forbid")

    runs: ScopeNames = Field(None, max_length=100)
    tags: ScopeNames = Field(None, max_length=100)
    batches: ScopeNames = Field(None, max_length=100)
    tasks: ScopeNames = Field(None, max_length=100)


class PublicTokenBody(WireModel):
    """Body of POST /api/v1/auth/public-tokens."""

    model_config = ConfigDict(extra="forbid")

    read: PublicTokenRead
    expires_in: ExpiresIn = None


class TriggerTokenBody(WireModel):
    """Body of POST /api/v1/auth/trigger-tokens."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=256, description="The task it triggers, once")
    expires_in: ExpiresIn = None


class IssuedTokenBody(BaseModel):
    """A public access token: send it as `Authorization: Bearer <token>`."""

    token: str
    expires_at: datetime


class MetadataBody(WireModel):
    """Body of PUT /api/v1/runs/{id}/metadata: the run's new metadata."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any]
