"""What a call of the API is, and how it is sent and answered, without any I/O.

A `Call` is one request (method, path, params, body) with the parser of its answer. The public
operations build theirs in `_namespaces` (`client.runs.retrieve`, ...); the worker protocol's
are built here (`lease`, `heartbeat`, ...) and sent with `AsyncClient.send`. Arguments are
checked while a call is built, before any request: a wrong option or a payload JSON cannot hold
is an error at the call site, not a round trip later.

Sending is a plan: a generator that yields the requests to make and the pauses to take, and
returns the result (`exchange`: one call, sent again after a 429 or 503; `plan`: the steps of an
operation such as `runs.poll`). `Client` carries plans out with urllib3, blocking; `AsyncClient`
with httpx, awaiting. Neither decides anything else, so the two clients cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter

from conveyor.errors import (
    ApiError,
    AuthenticationError,
    Conflict,
    ConveyorError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadError,
    RateLimited,
    StaleAttempt,
    StoreUnavailable,
)
from conveyor.models import (
    Deployment,
    Run,
    Schedule,
    TaskDefinition,
    TriggerOptions,
)
from conveyor.models import dump_trigger_options as trigger_options
from conveyor.protocol import (
    AttemptOutcome,
    DurableCall,
    Heartbeat,
    HeartbeatReply,
    LeaseReply,
    LogEntry,
    MetadataOp,
    call_args,
)
from conveyor.telemetry import current_trace_context

T = TypeVar("T")

MAX_BATCH_ITEMS = 1000  # the engine's limit, repeated: the client must not import the engine


class _Unset:
    """Marks an argument that was not given, where None is a meaningful value (a null payload)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to send and how to turn its JSON answer into a `T`."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    parse: Callable[[Any], T]
    params: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None  # None sends no body at all
    # seconds, instead of the client's own (a heartbeat must not wait long)
    timeout: float | None = None
    resend_refused: bool = True  # send again after a 429 or 503 (a heartbeat is sent again anyway)


Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    """One page of a list call: the items (newest first) and the cursor of the next page, if
    any. Iterating a page iterates its items."""

    data: list[Item]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[Item]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Item:
        return self.data[index]

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


class RunPage(Page[Run]):
    """One page of `runs.list`."""

    __slots__ = ()


class DeploymentPage(Page[Deployment]):
    """One page of `deployments.list`."""

    __slots__ = ()


class SchedulePage(Page[Schedule]):
    """One page of `schedules.list`."""

    __slots__ = ()


# -- checking arguments -------------------------------------------------------------------


def merge_options(
    options: Mapping[str, Any] | TriggerOptions | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """`options=` and keyword options together; a keyword wins over the same name in `options`."""
    base = trigger_options(options)
    return trigger_options({**base, **extra}) if extra else base


def traced(options: dict[str, Any]) -> dict[str, Any]:
    """Trigger options (as the API takes them) with the W3C trace context of the active
    OpenTelemetry span, unless they carry one: the run continues the caller's trace."""
    if "trace_context" not in options:
        context = current_trace_context()
        if context is not None:
            return {**options, "trace_context": context}
    return options


def segment(value: Any, what: str) -> str:
    """One path segment; an empty id would silently turn into another route."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{what} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def time_param(value: datetime | str | float, name: str) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz=UTC).isoformat()
    raise InvalidRequest(
        f"{name} must be a datetime, an ISO string or epoch seconds, not {value!r}"
    )


# -- the worker protocol (conveyor worker) --------------------------------------------------

_lease_reply = TypeAdapter(LeaseReply)
_outcomes = TypeAdapter(list[AttemptOutcome])
_log_entries = TypeAdapter(list[LogEntry])


def _worker(worker_id: str, action: str) -> str:
    return f"/api/v1/workers/{segment(worker_id, 'worker id')}/{action}"


def register_worker(
    worker_id: str, name: str, tasks: list[TaskDefinition] | None, deployed: bool = False
) -> Call[dict[str, Any]]:
    return Call(
        "POST",
        _worker(worker_id, "register"),
        dict,
        body={
            "name": name,
            "tasks": None if tasks is None else [t.model_dump(mode="json") for t in tasks],
            "deployed": deployed,
        },
    )


def set_worker_tasks(worker_id: str, tasks: list[TaskDefinition]) -> Call[Any]:
    return Call(
        "POST",
        _worker(worker_id, "tasks"),
        dict,
        body={"tasks": [t.model_dump(mode="json") for t in tasks]},
    )


def lease(worker_id: str, capacity: int, wait: float) -> Call[LeaseReply]:
    return Call(
        "POST",
        _worker(worker_id, "lease"),
        _lease_reply.validate_python,
        body={"capacity": capacity, "wait": wait},
    )


def heartbeat(
    worker_id: str, beat: Heartbeat, timeout: float | None = None
) -> Call[HeartbeatReply]:
    return Call(
        "POST",
        _worker(worker_id, "heartbeat"),
        lambda data: HeartbeatReply(
            stop=list(data["stop"]), revoked_through=int(data.get("revoked_through", 0))
        ),
        body={"running": [list(r) for r in beat.running], "lease_seq": beat.lease_seq},
        timeout=timeout,
        resend_refused=False,
    )


def complete(worker_id: str, outcomes: list[AttemptOutcome]) -> Call[Any]:
    return Call(
        "POST",
        _worker(worker_id, "complete"),
        dict,
        body={"outcomes": _outcomes.dump_python(outcomes, mode="json")},
    )


def hooks_done(worker_id: str, done: list[tuple[str, str, int]]) -> Call[Any]:
    return Call("POST", _worker(worker_id, "hooks"), dict, body={"done": [list(d) for d in done]})


def append_logs(worker_id: str, entries: list[LogEntry]) -> Call[Any]:
    return Call(
        "POST",
        _worker(worker_id, "logs"),
        dict,
        body={"entries": _log_entries.dump_python(entries, mode="json")},
    )


def run_call(worker_id: str, run_id: str, fence: int, call: DurableCall) -> Call[Any]:
    """A durable call of a run: its `op` and the rest of the message as `args`."""
    return Call(
        "POST",
        _worker(worker_id, "calls"),
        lambda data: data["result"],
        body={"run_id": run_id, "fence": fence, "op": call.op, "args": call_args(call)},
    )


def metadata_flushes(
    worker_id: str, flushes: list[tuple[str, int, list[MetadataOp]]]
) -> Call[list[Any]]:
    """Metadata flushes of many runs, (run id, fence, ops) each: an answer or the error for each."""
    return Call(
        "POST",
        _worker(worker_id, "metadata"),
        lambda data: [
            error_from_body(a["error"]) if a.get("error") else a["result"] for a in data["answers"]
        ],
        body={
            "flushes": [
                {"run_id": run_id, "fence": fence, "ops": [list(op) for op in ops]}
                for run_id, fence, ops in flushes
            ]
        },
    )


def suspend(
    worker_id: str,
    run_id: str,
    attempt: int,
    fence: int,
    waitpoints: list[str],
    compute_used: float,
) -> Call[dict[str, Any]]:
    return Call(
        "POST",
        _worker(worker_id, "suspend"),
        dict,
        body={
            "run_id": run_id,
            "attempt": attempt,
            "fence": fence,
            "waitpoints": waitpoints,
            "compute_used": compute_used,
        },
    )


def worker_stopped(worker_id: str) -> Call[Any]:
    return Call("POST", _worker(worker_id, "stop"), dict)


# -- answers ------------------------------------------------------------------------------

_BY_CODE: dict[str, type[ConveyorError]] = {
    "unavailable": StoreUnavailable,
    "rate_limited": RateLimited,
    "not_found": NotFound,
    "unauthorized": AuthenticationError,
    "conflict": Conflict,
    "attempt_stale": StaleAttempt,
    "payload_invalid": PayloadError,
    "invalid_request": InvalidRequest,
    "malformed_json": InvalidRequest,
    "forbidden": Forbidden,
}
_BY_STATUS: dict[int, type[ConveyorError]] = {
    404: NotFound,
    401: AuthenticationError,
    403: Forbidden,
    409: Conflict,
    422: PayloadError,
    429: RateLimited,
    503: StoreUnavailable,
}

REFUSED_RETRIES = 3  # times a call refused with 429 or 503 is sent again before its error is raised
MAX_RETRY_AFTER = 30.0  # seconds; a longer Retry-After is raised at once rather than slept
RETRIED_STATUSES = (429, 503)  # rate limited; the database briefly unreachable


def retry_delay(status: int, retry_after: str | None, retries_done: int) -> float | None:
    """Seconds to wait before sending again a call the server refused with 429 (the key's rate
    limit) or 503 (its database unreachable for a moment, a restart say), or None to stop (another
    status, retries used up, or a wait too long to sit through). Both are answered before the
    request changed anything, so sending it again is safe even for a trigger."""
    if status not in RETRIED_STATUSES or retries_done >= REFUSED_RETRIES:
        return None
    try:
        delay = float(retry_after) if retry_after is not None else 1.0
    except ValueError:  # an HTTP date: Conveyor sends seconds, so wait the customary second
        delay = 1.0
    if not math.isfinite(delay) or delay < 0:
        delay = 1.0
    return delay if delay <= MAX_RETRY_AFTER else None


def error_from_response(status: int, content: bytes) -> ConveyorError:
    """The error an error answer stands for: mapped by its code, then by its status."""
    code, message = "api_error", ""
    try:
        error = json.loads(content)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {status}: {content[:300].decode('utf-8', 'replace') or 'no body'}"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None and 400 <= status < 500:
        cls = InvalidRequest
    if cls is None:
        return ApiError(message, status=status, code=code)
    return cls(message)


def error_from_body(error: Any) -> ConveyorError:
    """The error one part of an answer stands for (`{"code": ..., "message": ...}`)."""
    code, message = str(error.get("code", "")), str(error.get("message", ""))
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else ApiError(message, status=0, code=code)


def read_response(call: Call[T], status: int, content: bytes) -> T:
    """The call's result from an answer, or the error the answer stands for."""
    if not 200 <= status < 300:
        raise error_from_response(status, content)
    try:
        return call.parse(json.loads(content))
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise ApiError(
            f"unexpected answer to {call.method} {call.path}: {exc}; are the client and the "
            "server the same Conveyor version?",
            status=status,
            code="bad_response",
        ) from exc


def unreachable(api_url: str, exc: Exception) -> ApiError:
    return ApiError(
        f"cannot reach Conveyor at {api_url}: is `conveyor dev` running? "
        f"({exc.__class__.__name__}: {exc})",
        status=0,
        code="unreachable",
    )


def timed_out(api_url: str, call: Call[Any], exc: Exception) -> ApiError:
    return ApiError(
        f"Conveyor at {api_url} did not answer {call.method} {call.path} in time "
        f"({exc.__class__.__name__}); retry, or raise the client's timeout",
        status=0,
        code="timeout",
    )


def headers(secret_key: str) -> dict[str, str]:
    from conveyor.version import __version__

    return {
        "Authorization": f"Bearer {secret_key}",
        "Accept": "application/json",
        "User-Agent": f"conveyor-python/{__version__}",
    }


# -- plans: how a call is sent, without sending it -----------------------------------------


@dataclass(frozen=True, slots=True)
class Sleep:
    """A pause a plan asks for before it goes on (a Retry-After, a poll's interval)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Answer:
    """What a plan is given back for a request it yielded: the status and the body."""

    status: int
    content: bytes
    retry_after: str | None = None


# What a plan yields: a request to make (answered with an `Answer`) or a pause (answered with None).
Effect = Call[Any] | Sleep
Plan = Generator[Effect, Any, T]
# What a multi-step operation yields: a call (answered with its result) or a pause.
Steps = Generator[Call[Any] | Sleep, Any, T]


def exchange(call: Call[T]) -> Plan[T]:
    """Send `call` and read its answer; after a 429 or 503 wait the Retry-After and send it again,
    a few times (`retry_delay`), unless the call says not to (a heartbeat is sent again anyway)."""
    retries = 0 if call.resend_refused else REFUSED_RETRIES
    while True:
        answer: Answer = yield call
        delay = retry_delay(answer.status, answer.retry_after, retries)
        if delay is None:
            return read_response(call, answer.status, answer.content)
        retries += 1
        yield Sleep(delay)


def plan(made: Call[T] | Steps[T]) -> Plan[T]:
    """The plan of an operation: its one call, or its steps with each call exchanged."""
    if isinstance(made, Call):
        return (yield from exchange(made))
    reply: Any = None
    while True:
        try:
            step = made.send(reply)
        except StopIteration as done:
            return done.value
        reply = (yield from exchange(step)) if isinstance(step, Call) else (yield step)
