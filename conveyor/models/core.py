"""The vocabulary of runs: run statuses, retry policies, trigger options, queues, task
definitions, runs, their attempts, logs and tokens (conveyor/models/__init__.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from conveyor.durations import DURATION_PATTERN, MAX_SECONDS, parse_duration
from conveyor.errors import InvalidRequest, validation_summary
from conveyor.serialization import to_json_value


class RunStatus(StrEnum):
    """Where a run is in its life. See docs/reference/statuses.md."""

    PENDING_VERSION = "PENDING_VERSION"  # no deployed version defines its task yet
    DELAYED = "DELAYED"  # triggered with a delay that has not passed
    QUEUED = "QUEUED"  # waiting for a slot (or for its next attempt time after a failure)
    DEQUEUED = "DEQUEUED"  # claimed by a worker that has not started it yet
    EXECUTING = "EXECUTING"  # an attempt is running and holds a concurrency slot
    WAITING = "WAITING"  # suspended on a durable wait; holds no slot and no process
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    CRASHED = "CRASHED"  # its process died (kill -9, segfault, out of memory) on the last attempt
    SYSTEM_FAILURE = "SYSTEM_FAILURE"  # Conveyor could not run it (task missing from the code, ...)
    TIMED_OUT = "TIMED_OUT"  # exceeded max_duration
    EXPIRED = "EXPIRED"  # its ttl passed before it started

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.CRASHED,
        RunStatus.SYSTEM_FAILURE,
        RunStatus.TIMED_OUT,
        RunStatus.EXPIRED,
    }
)
FAILURE_STATUSES = frozenset(
    {
        RunStatus.FAILED,
        RunStatus.CRASHED,
        RunStatus.SYSTEM_FAILURE,
        RunStatus.TIMED_OUT,
        RunStatus.EXPIRED,
    }
)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # a payload, an output or a step's result, as JSON
MAX_PAYLOAD_HINT = "keep large data elsewhere (a file, an object store) and pass a reference to it"

# -- JSON values as the API documents them ----------------------------------------------------
# Fields whose Python side is lenient (a tag as one string, a queue by its name, a duration as
# "1h30m") say so in the OpenAPI document, and numbers are JSON numbers only (`true` and "5"
# are refused, which pydantic would otherwise take): what the document allows is accepted, and
# what it forbids is refused.


@cache
def _number_fields(model: type[BaseModel]) -> frozenset[str]:
    found = set()
    for name, info in model.model_fields.items():
        kinds = {
            arg
            for arg in (get_args(info.annotation) or (info.annotation,))
            if arg is not type(None)
        }
        if kinds and kinds <= {int, float}:
            found.add(info.alias or name)
    return frozenset(found)


@cache
def _bool_fields(model: type[BaseModel]) -> frozenset[str]:
    found = set()
    for name, info in model.model_fields.items():
        kinds = {
            arg
            for arg in (get_args(info.annotation) or (info.annotation,))
            if arg is not type(None)
        }
        if kinds == {bool}:
            found.add(info.alias or name)
    return frozenset(found)


class WireModel(BaseModel):
    """A model that comes over the wire as JSON: its number fields take JSON numbers only and its
    boolean fields JSON booleans only (pydantic would also take `true` and "5" for a number, 0
    and "yes" for a boolean), so what the OpenAPI document forbids is refused."""

    @model_validator(mode="before")
    @classmethod
    def _json_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _number_fields(cls):
                if isinstance(data.get(name), bool | str):
                    raise ValueError(f"{name} must be a number, not {type(data[name]).__name__}")
            for name in _bool_fields(cls):
                if name in data and not isinstance(data[name], bool):
                    raise ValueError(f"{name} must be true or false, not {data[name]!r}")
        return data


_SECONDS: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
_DURATION_TEXT: dict[str, Any] = {"type": "string", "pattern": DURATION_PATTERN}
_NULL: dict[str, Any] = {"type": "null"}
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
_TAG: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128}


def _duration(name: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is not None:
            parse_duration(value, name=name)
        return value

    return BeforeValidator(check)


_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [_SECONDS, _DURATION_TEXT, _NULL],
        "description": 'Seconds, or a duration such as "90s", "1h30m", "2d"',
    }
)
# optional durations: seconds (a number) or text such as "1h30m", named in their errors
Ttl = Annotated[float | str | None, _duration("ttl"), _DURATION_SCHEMA]
KeyTtl = Annotated[float | str | None, _duration("idempotency_key_ttl"), _DURATION_SCHEMA]
Timeout = Annotated[float | str | None, _duration("timeout"), _DURATION_SCHEMA]


MACHINES: dict[str, tuple[float, float]] = {
    # preset: (vCPU, memory in GB)
    "micro": (0.25, 0.25),
    "small-1x": (0.5, 0.5),
    "small-2x": (1, 1),
    "medium-1x": (1, 2),
    "medium-2x": (2, 4),
    "large-1x": (4, 8),
    "large-2x": (8, 16),
}
MachineName = Literal[
    "micro", "small-1x", "small-2x", "medium-1x", "medium-2x", "large-1x", "large-2x"
]


class OutOfMemoryRetry(BaseModel):
    """`retry={"out_of_memory": {"machine": "medium-1x"}}`: an attempt that runs out of memory
    runs again at once on this larger machine (without using up one of the run's attempts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: MachineName


class RetryPolicy(WireModel):
    """How a failed attempt is retried; the delay formula lives in `conveyor.retries`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=250)
    factor: float = Field(2.0, gt=0)
    min_timeout_ms: int = Field(1000, ge=0)
    max_timeout_ms: int = Field(60_000, ge=0)
    randomize: bool = True
    out_of_memory: OutOfMemoryRetry | None = None


_WeightKey = Annotated[str, Field(min_length=1, max_length=256)]
_Weight = Annotated[int, Field(ge=1, le=1000)]


class RateLimit(WireModel):
    """`rate_limit={"limit": 50, "period": "1m"}`: at most `limit` runs of the queue start in
    any window of `period` (a sliding window: no burst above it), per concurrency key when runs
    have one. Every time a run takes a slot counts: a first attempt, a retry, a resume after a
    wait."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(ge=1, le=1_000_000)
    period: Annotated[
        float | str,
        _duration("rate_limit.period"),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
                    {"type": "string", "pattern": r"^[1-9][0-9]{0,3}[smhd]$"},
                ],
                "description": "The window: seconds, or a duration such as '1m'",
            }
        ),
    ]

    @field_validator("period")
    @classmethod
    def _period(cls, value: float | str) -> float:
        seconds = parse_duration(value, name="rate_limit.period")
        if seconds <= 0:
            raise ValueError(f"rate_limit.period must be more than 0, got {value!r}")
        return seconds

    @property
    def seconds(self) -> float:
        """The window in seconds."""
        return float(self.period)


class QueueSpec(WireModel):
    """A queue named by a trigger option or a task: its name and, optionally, its limits.

    `weights` give concurrency keys more turns than others when runs of several keys wait for
    slots (keys not named weigh 1): the queue serves keys in weighted round-robin, so no key's
    backlog delays another key's runs by more than its share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    concurrency_limit: int | None = Field(None, ge=0, le=100_000)
    rate_limit: RateLimit | None = None
    weights: dict[_WeightKey, _Weight] | None = Field(None, max_length=1000)


class DebounceSpec(WireModel):
    """`debounce={"key": ..., "delay": "5s", "mode": "trailing", "max_delay": "1m"}`: triggers
    of a task with the same key make one run, which starts `delay` after the last of them (but
    no later than `max_delay` after the first). "trailing" runs with the last trigger's payload,
    "leading" with the first's. See docs/triggering.md#debounce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=512)
    delay: Annotated[
        float | str,
        _duration("debounce.delay"),
        WithJsonSchema(
            {"anyOf": [_SECONDS, _DURATION_TEXT], "description": "Seconds, or a duration"}
        ),
    ]
    mode: Literal["trailing", "leading"] = "trailing"
    max_delay: Annotated[
        float | str | None,
        _duration("debounce.max_delay"),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
                    _DURATION_TEXT,
                    _NULL,
                ],
                "description": 'More than 0: seconds, or a duration such as "1m"',
            }
        ),
    ] = None

    @field_validator("max_delay")
    @classmethod
    def _max_delay(cls, value: float | str | None) -> float | str | None:
        if value is not None and parse_duration(value, name="debounce.max_delay") <= 0:
            raise ValueError(
                f"debounce.max_delay must be more than 0, got {value!r} (leave it out for no "
                "deadline)"
            )
        return value


# W3C trace context of the span a trigger was made in (docs/opentelemetry.md): version 00, as
# OpenTelemetry writes it; a context of all-zero ids is no context
_TRACEPARENT = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_TRACESTATE = r"^[\x20-\x7e]{0,512}$"


class TraceContext(WireModel):
    """The W3C trace context a run continues: its spans are in that trace, under that span."""

    model_config = ConfigDict(extra="forbid")

    traceparent: str = Field(pattern=_TRACEPARENT)
    tracestate: str | None = Field(None, pattern=_TRACESTATE)


class TriggerOptions(WireModel):
    """Options of one trigger. The same names in Python (`task.trigger(p, **options)`) and HTTP."""

    model_config = ConfigDict(
        extra="forbid",
        # debounce sets when the run starts: not with a delay (see _one_delay)
        json_schema_extra={
            "not": {
                "required": ["delay", "debounce"],
                "properties": {
                    "delay": {"not": {"type": "null"}},
                    "debounce": {"not": {"type": "null"}},
                },
            }
        },
    )

    idempotency_key: str | None = Field(None, min_length=1, max_length=2048)
    idempotency_key_ttl: KeyTtl = None
    delay: Annotated[
        float | str | datetime | None,
        WithJsonSchema(
            {
                "anyOf": [
                    _SECONDS,
                    _DURATION_TEXT,
                    {"type": "string", "format": "date-time", "pattern": _DATE_TIME},
                    _NULL,
                ],
                "description": (
                    'Seconds, a duration such as "1h30m", or an ISO 8601 date-time to start at'
                ),
            }
        ),
    ] = None
    ttl: Ttl = None
    tags: Annotated[
        list[str],
        WithJsonSchema(
            {
                "anyOf": [{"type": "array", "items": _TAG, "maxItems": 10}, _TAG],
                "description": (
                    "Up to 10 tags of 1 to 128 characters (one tag may be given as a string)"
                ),
            }
        ),
    ] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    queue: Annotated[
        QueueSpec | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 128},
                            "concurrency_limit": {
                                "anyOf": [
                                    {"type": "integer", "minimum": 0, "maximum": 100_000},
                                    _NULL,
                                ]
                            },
                        },
                    },
                    {"type": "string", "minLength": 1, "maxLength": 128},
                    _NULL,
                ],
                "description": "The queue by name, or a name and a concurrency limit",
            }
        ),
    ] = None
    concurrency_key: str | None = Field(None, min_length=1, max_length=256)
    priority: float = Field(0, ge=0, le=86400 * 365)
    max_attempts: int | None = Field(None, ge=1, le=250)
    max_duration: float | None = Field(None, gt=0, le=MAX_SECONDS)
    machine: MachineName | None = None
    debounce: DebounceSpec | None = None
    # set by the clients from the active OpenTelemetry span (conveyor/telemetry.py)
    trace_context: TraceContext | None = None

    @field_validator("trace_context", mode="after")
    @classmethod
    def _trace_context(cls, value: TraceContext | None) -> TraceContext | None:
        if value is not None and (
            "-" + "0" * 32 + "-" in value.traceparent or value.traceparent[36:52] == "0" * 16
        ):
            return None  # W3C: ids of zeros are invalid, and an invalid context is ignored
        return value

    @model_validator(mode="after")
    def _one_delay(self) -> TriggerOptions:
        if self.debounce is not None and self.delay is not None:
            raise ValueError("debounce sets when the run starts: give delay or debounce, not both")
        return self

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            if len(value) > 10:
                raise ValueError("at most 10 tags per run")
            for tag in value:
                if not isinstance(tag, str) or not 1 <= len(tag) <= 128:
                    raise ValueError("each tag must be a string of 1 to 128 characters")
        return value

    @field_validator("queue", mode="before")
    @classmethod
    def _queue(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if (
            hasattr(value, "name")
            and hasattr(value, "concurrency_limit")
            and not isinstance(value, dict)
        ):
            return {
                "name": value.name,
                "concurrency_limit": value.concurrency_limit,
                "rate_limit": getattr(value, "rate_limit", None),
                "weights": getattr(value, "weights", None),
            }
        return value

    @field_validator("delay", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, str) and re.fullmatch(_DATE_TIME, value):
            datetime.fromisoformat(value)  # a date that does not exist (February 30th) is refused
            return value
        parse_duration(value, name="delay")
        return value


OPTION_NAMES = tuple(TriggerOptions.model_fields)


def dump_trigger_options(
    options: Mapping[str, Any] | TriggerOptions | None, where: str = ""
) -> dict[str, Any]:
    """Trigger options checked against TriggerOptions, as the JSON the API takes (defaults left
    out). InvalidRequest names an unknown or invalid option."""
    if options is None:
        return {}
    if isinstance(options, TriggerOptions):
        parsed = options
    else:
        if not isinstance(options, Mapping):
            raise InvalidRequest(
                f"{where}options must be a dict of trigger options, not {type(options).__name__}"
            )
        unknown = sorted(str(name) for name in options if name not in OPTION_NAMES)
        if unknown:
            raise InvalidRequest(
                f"{where}unknown trigger option {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(OPTION_NAMES)}"
            )
        if options.get("metadata") is not None:
            to_json_value(options["metadata"], f"{where}options.metadata")
        try:
            parsed = TriggerOptions.model_validate(dict(options))
        except ValidationError as exc:
            raise InvalidRequest(
                f"{where}invalid trigger options: {validation_summary(exc)}"
            ) from exc
    return parsed.model_dump(mode="json", exclude_defaults=True)


CatchUp = Literal["latest", "none"]
Overlap = Literal["allow", "skip"]


class TaskSchedule(WireModel):
    """How the code schedules a scheduled task (`@schedules.task`): with `cron`, the declarative
    schedule the platform keeps in step with the code; without, only imperative schedules fire
    it. The policies are those of its declarative schedule."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    timezone: str = "UTC"
    catch_up: CatchUp = "latest"
    overlap: Overlap = "allow"


class TaskDefinition(WireModel):
    """What a worker tells the platform about one task it can run (its effective settings)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    queue: QueueSpec
    retry: RetryPolicy
    max_duration: float | None = None
    machine: MachineName = "small-1x"
    ttl: float | None = None
    hooks: list[Literal["on_start", "on_success", "on_failure", "on_cancel", "on_complete"]] = (
        Field(default_factory=list)
    )
    payload_schema: dict[str, Any] | None = None
    description: str | None = None
    file: str | None = None
    is_async: bool = True
    schedule: TaskSchedule | None = None  # a scheduled task (`@schedules.task`)


class ModuleFailure(BaseModel):
    """A task module that failed to import: the tasks of the other modules load without it."""

    file: str  # relative to the project root
    line: int | None = None
    error: str  # "SyntaxError: invalid syntax"

    def describe(self) -> str:
        line = f" (line {self.line})" if self.line else ""
        return f"{self.file} failed to import: {self.error}{line}"


class RunError(BaseModel):
    """Why an attempt or a run failed."""

    model_config = ConfigDict(extra="allow")

    name: str = "Error"
    message: str = ""
    stack: str | None = None
    code: str | None = None  # aborted, timed_out, crashed, payload_invalid, expired, canceled, ...


class Attempt(BaseModel):
    """One finished attempt of a run."""

    number: int
    status: str
    worker_id: str | None = None
    started_at: datetime
    completed_at: datetime
    error: RunError | None = None
    # the time it held a slot: from each start or resume to its end or suspension
    compute_seconds: float = 0.0


class WaitInfo(BaseModel):
    """A waitpoint a suspended run waits on: a duration (until `complete_at`), a child run, a
    batch (`done` of `total` children ended) or a token (its id: complete it to resume the run)."""

    id: str
    kind: Literal["duration", "run", "batch", "token"]
    complete_at: datetime | None = None
    done: int | None = None
    total: int | None = None


class Run(BaseModel):
    """A run as the API shows it."""

    id: str
    task_id: str
    status: RunStatus
    payload: Any = None
    output: Any = None
    error: RunError | None = None
    attempts: int = 0
    max_attempts: int = 1
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    queue: str = ""
    concurrency_key: str | None = None
    priority: float = 0
    idempotency_key: str | None = None
    machine: str | None = None
    max_duration: float | None = None
    parent_id: str | None = None
    root_id: str | None = None
    child_count: int | None = Field(
        None, description="How many runs it triggered (in lists of runs; null elsewhere)"
    )
    batch_id: str | None = None
    replayed_from: str | None = None
    version: str | None = Field(
        None,
        description="The deployed version the run is locked to (set when it starts; "
        "null in dev and before it starts)",
    )
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    delayed_until: datetime | None = None
    next_attempt_at: datetime | None = None
    expires_at: datetime | None = None
    compute_seconds: float = Field(
        0.0,
        description="Compute seconds of its ended attempts: the time each held a slot, waits "
        "that suspended it excluded",
    )
    is_cached: bool = False  # this trigger returned an existing run for its idempotency key
    attempt_list: list[Attempt] | None = None
    # what a WAITING run waits for (with the run's details)
    waiting_on: list[WaitInfo] | None = None

    @property
    def is_final(self) -> bool:
        return self.status.is_final


class LogLine(BaseModel):
    """One log line of an attempt (`logger`, `print`, or standard `logging`)."""

    run_id: str
    attempt: int
    seq: int
    ts: datetime
    level: str
    message: str
    attributes: dict[str, Any] | None = None


class QueueInfo(BaseModel):
    """A queue with its limit, its state and what is in it now."""

    name: str
    concurrency_limit: int | None = None  # the limit in force
    code_limit: int | None = None  # what the task code declares
    override_limit: int | None = None  # set through the API; wins over the code's until cleared
    paused: bool = False
    running: int = 0
    queued: int = 0
    rate_limit: RateLimit | None = None  # at most `limit` starts in any window of `period`
    rate_used: int = 0  # starts in the current window (every concurrency key's together)
    weights: dict[str, int] | None = None  # concurrency keys' shares of the round-robin


class Token(BaseModel):
    """A waitpoint token: a run waits on it with `wait.for_token`; anything completes it with
    `wait.complete_token`, the API, or a plain POST of JSON to its signed `url`."""

    id: str
    url: str | None = None
    status: Literal["PENDING", "COMPLETED", "TIMED_OUT"] = "PENDING"
    idempotency_key: str | None = None
    tags: list[str] = Field(default_factory=list)
    timeout_at: datetime | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None
