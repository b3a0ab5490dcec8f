"""Every HTTP call of the API, defined once: method, path, body, and how to read the answer.

A function here builds a `Call` (sans I/O); `Client` sends it with httpx.Client and
`AsyncClient` with httpx.AsyncClient, then both hand the answer to `read_response`. So the
two clients cannot drift apart: a call, its checks and its parsing exist in one place.
Arguments are checked here, before any request: a wrong option or a payload JSON cannot hold
is an error at the call site, not a round trip later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    DeploymentBundle,
    EnvironmentKey,
    LogLine,
    Project,
    ProjectEnvironment,
    QueueInfo,
    Run,
    RunStatus,
    TaskDefinition,
    Token,
    Trace,
    TriggerOptions,
    User,
)
from conveyor.models import dump_trigger_options as trigger_options
from conveyor.protocol import AttemptOutcome, Heartbeat, HeartbeatReply, LeaseReply, LogEntry
from conveyor.results import BatchHandle, RunHandle
from conveyor.serialization import to_json_value

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

    method: Literal["GET", "POST"]
    path: str
    parse: Callable[[Any], T]
    params: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None  # None sends no body at all
    timeout: float | None = (
        None  # seconds, instead of the client's own (a heartbeat must not wait long)
    )
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


# -- checking arguments -------------------------------------------------------------------


def merge_options(
    options: Mapping[str, Any] | TriggerOptions | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """`options=` and keyword options together; a keyword wins over the same name in `options`."""
    base = trigger_options(options)
    return trigger_options({**base, **extra}) if extra else base


def _segment(value: Any, what: str) -> str:
    """One path segment; an empty id would silently turn into another route."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{what} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _time_param(value: datetime | str | float, name: str) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz=UTC).isoformat()
    raise InvalidRequest(
        f"{name} must be a datetime, an ISO string or epoch seconds, not {value!r}"
    )


# -- the calls ----------------------------------------------------------------------------

_tasks = TypeAdapter(list[TaskDefinition])
_logs = TypeAdapter(list[LogLine])
_queues = TypeAdapter(list[QueueInfo])


def _handle(task_id: str) -> Callable[[Any], RunHandle]:
    return lambda data: RunHandle(
        str(data["id"]), str(data.get("task_id") or task_id), bool(data.get("is_cached"))
    )


def trigger(
    task_id: str, payload: Any, options: Mapping[str, Any] | TriggerOptions | None
) -> Call[RunHandle]:
    body = {"payload": to_json_value(payload), "options": trigger_options(options)}
    return Call(
        "POST", f"/api/v1/tasks/{_segment(task_id, 'task id')}/trigger", _handle(task_id), body=body
    )


def batch_trigger(task_id: str, items: Iterable[Mapping[str, Any]]) -> Call[BatchHandle]:
    if isinstance(items, Mapping | str | bytes) or not isinstance(items, Iterable):
        raise InvalidRequest("batch items must be a list of {'payload': ..., 'options': {...}}")
    items = list(items)
    if not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH_ITEMS} items, got {len(items)}")
    wire = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) - {"payload", "options"}:
            raise InvalidRequest(
                f"items[{index}] must be a dict with 'payload' and optionally 'options'"
            )
        wire.append(
            {
                "payload": to_json_value(item.get("payload"), f"items[{index}].payload"),
                "options": trigger_options(item.get("options"), f"items[{index}]: "),
            }
        )
    handle = _handle(task_id)

    def parse(data: Any) -> BatchHandle:
        return BatchHandle(str(data["batch_id"]), [handle(run) for run in data["runs"]])

    return Call(
        "POST", f"/api/v1/tasks/{_segment(task_id, 'task id')}/batch", parse, body={"items": wire}
    )


def list_tasks() -> Call[list[TaskDefinition]]:
    return Call("GET", "/api/v1/tasks", lambda data: _tasks.validate_python(data["data"]))


def retrieve_task(task_id: str) -> Call[TaskDefinition]:
    return Call(
        "GET", f"/api/v1/tasks/{_segment(task_id, 'task id')}", TaskDefinition.model_validate
    )


def retrieve_run(run_id: str) -> Call[Run]:
    return Call("GET", f"/api/v1/runs/{_segment(run_id, 'run id')}", Run.model_validate)


def list_runs(
    *,
    status: str | RunStatus | Iterable[str | RunStatus] | None = None,
    task: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    created_from: datetime | str | float | None = None,
    created_to: datetime | str | float | None = None,
    roots: bool = False,
) -> Call[RunPage]:
    params: list[tuple[str, str]] = []
    if roots:
        params.append(("roots", "true"))
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        params.extend(("status", str(s.value if isinstance(s, RunStatus) else s)) for s in statuses)
    for name, value in (("task", task), ("tag", tag), ("cursor", cursor)):
        if value is not None:
            params.append((name, value))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit must be a whole number from 1 to 1000, got {limit!r}")
    params.append(("limit", str(limit)))
    if created_from is not None:
        params.append(("created_from", _time_param(created_from, "created_from")))
    if created_to is not None:
        params.append(("created_to", _time_param(created_to, "created_to")))

    def parse(data: Any) -> RunPage:
        return RunPage([Run.model_validate(run) for run in data["data"]], data.get("next_cursor"))

    return Call("GET", "/api/v1/runs", parse, params=tuple(params))


def cancel_run(run_id: str) -> Call[Run]:
    return Call("POST", f"/api/v1/runs/{_segment(run_id, 'run id')}/cancel", Run.model_validate)


def replay_run(run_id: str, payload: Any = UNSET) -> Call[RunHandle]:
    """Without `payload` the server reuses the run's payload; `payload=None` replays with null."""
    body = {} if payload is UNSET else {"payload": to_json_value(payload)}
    return Call("POST", f"/api/v1/runs/{_segment(run_id, 'run id')}/replay", _handle(""), body=body)


def run_logs(run_id: str) -> Call[list[LogLine]]:
    return Call(
        "GET",
        f"/api/v1/runs/{_segment(run_id, 'run id')}/logs",
        lambda data: _logs.validate_python(data["data"]),
    )


def run_trace(run_id: str) -> Call[Trace]:
    return Call("GET", f"/api/v1/runs/{_segment(run_id, 'run id')}/trace", Trace.model_validate)


def list_queues() -> Call[list[QueueInfo]]:
    return Call("GET", "/api/v1/queues", lambda data: _queues.validate_python(data["data"]))


def retrieve_queue(name: str) -> Call[QueueInfo]:
    return Call("GET", f"/api/v1/queues/{_segment(name, 'queue name')}", QueueInfo.model_validate)


def pause_queue(name: str) -> Call[QueueInfo]:
    return Call(
        "POST", f"/api/v1/queues/{_segment(name, 'queue name')}/pause", QueueInfo.model_validate
    )


def resume_queue(name: str) -> Call[QueueInfo]:
    return Call(
        "POST", f"/api/v1/queues/{_segment(name, 'queue name')}/resume", QueueInfo.model_validate
    )


def set_queue_concurrency(name: str, limit: int | None) -> Call[QueueInfo]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidRequest(
            f"a concurrency limit is a whole number >= 0, or None for no limit; got {limit!r}"
        )
    return Call(
        "POST",
        f"/api/v1/queues/{_segment(name, 'queue name')}/concurrency",
        QueueInfo.model_validate,
        body={"concurrency_limit": limit},
    )


def create_token(
    *,
    timeout: float | str | None = None,
    idempotency_key: str | None = None,
    tags: list[str] | None = None,
) -> Call[Token]:
    body: dict[str, Any] = {"timeout": timeout, "idempotency_key": idempotency_key, "tags": tags}
    return Call(
        "POST",
        "/api/v1/waitpoints/tokens",
        Token.model_validate,
        body={k: v for k, v in body.items() if v is not None},
    )


def complete_token(token_id: str, data: Any = None) -> Call[Token]:
    return Call(
        "POST",
        f"/api/v1/waitpoints/tokens/{_segment(token_id, 'token id')}/complete",
        Token.model_validate,
        body={"data": to_json_value(data, "data")},
    )


def retrieve_token(token_id: str) -> Call[Token]:
    return Call(
        "GET", f"/api/v1/waitpoints/tokens/{_segment(token_id, 'token id')}", Token.model_validate
    )


def list_tokens(
    *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> Call[Page[Token]]:
    params = [("limit", str(limit))]
    if status:
        params.append(("status", status))
    if cursor:
        params.append(("cursor", cursor))
    return Call(
        "GET",
        "/api/v1/waitpoints/tokens",
        lambda data: Page([Token.model_validate(t) for t in data["data"]], data.get("next_cursor")),
        params=tuple(params),
    )


# -- deployments: versions of the task code in the key's environment ---------------------------

DEPLOY_ENVIRONMENTS = ("staging", "prod", "preview")


def _version(version: Any) -> str:
    return _segment(version, "version (YYYYMMDD.N)")


def create_deployment(
    *,
    environment: str,
    tasks: list[TaskDefinition],
    bundle: bytes,
    lock_sha256: str,
    details: Mapping[str, Any] | None = None,
    branch: str | None = None,
    promote: bool = True,
) -> Call[Deployment]:
    """Upload a version (what `conveyor deploy` sends once it has built and checked the bundle)."""
    if environment not in DEPLOY_ENVIRONMENTS:
        raise InvalidRequest(
            f"deploy to one of {', '.join(DEPLOY_ENVIRONMENTS)}, not {environment!r}"
        )
    if not isinstance(bundle, bytes | bytearray) or not bundle:
        raise InvalidRequest("bundle must be the bytes of a tar.gz")
    body: dict[str, Any] = {
        "environment": environment,
        "tasks": [t.model_dump(mode="json") for t in tasks],
        "bundle": base64.b64encode(bytes(bundle)).decode(),
        "lock_sha256": lock_sha256,
        "details": dict(details or {}),
        "promote": promote,
    }
    if branch is not None:
        body["branch"] = branch
    return Call("POST", "/api/v1/deployments", Deployment.model_validate, body=body)


def list_deployments(*, limit: int = 20, cursor: str | None = None) -> Call[DeploymentPage]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidRequest(f"limit must be a whole number from 1 to 100, got {limit!r}")
    params = [("limit", str(limit))] + ([("cursor", cursor)] if cursor is not None else [])

    def parse(data: Any) -> DeploymentPage:
        return DeploymentPage(
            [Deployment.model_validate(d) for d in data["data"]], data.get("next_cursor")
        )

    return Call("GET", "/api/v1/deployments", parse, params=tuple(params))


def retrieve_deployment(version: str) -> Call[Deployment]:
    """A version; `"current"` names the current one."""
    return Call("GET", f"/api/v1/deployments/{_version(version)}", Deployment.model_validate)


def promote_deployment(version: str) -> Call[Deployment]:
    return Call(
        "POST", f"/api/v1/deployments/{_version(version)}/promote", Deployment.model_validate
    )


def deployment_bundle(version: str) -> Call[tuple[DeploymentBundle, bytes]]:
    """A version's bundle and its bytes, checked against its sha256."""

    def parse(data: Any) -> tuple[DeploymentBundle, bytes]:
        meta = DeploymentBundle.model_validate(data)
        try:
            raw = base64.b64decode(meta.bundle, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the bundle is not base64") from exc
        if hashlib.sha256(raw).hexdigest() != meta.bundle_sha256:
            raise ValueError(f"the bundle of version {version} does not match its sha256")
        return meta, raw

    return Call("GET", f"/api/v1/deployments/{_version(version)}/bundle", parse)


# -- accounts: sent with a personal access token (cv_pat_...), not an environment key --------

_projects = TypeAdapter(list[Project])
_environments = TypeAdapter(list[ProjectEnvironment])


def whoami() -> Call[User]:
    return Call("GET", "/api/v1/me", User.model_validate)


def create_project(
    name: str, *, slug: str | None = None, organization: str | None = None
) -> Call[Project]:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"a project needs a name, got {name!r}")
    body: dict[str, Any] = {"name": name.strip(), "slug": slug, "organization": organization}
    return Call(
        "POST",
        "/api/v1/projects",
        Project.model_validate,
        body={k: v for k, v in body.items() if v is not None},
    )


def list_projects() -> Call[list[Project]]:
    return Call("GET", "/api/v1/projects", lambda data: _projects.validate_python(data["data"]))


def retrieve_project(ref: str) -> Call[Project]:
    return Call("GET", f"/api/v1/projects/{_segment(ref, 'project')}", Project.model_validate)


def list_environments(ref: str) -> Call[list[ProjectEnvironment]]:
    return Call(
        "GET",
        f"/api/v1/projects/{_segment(ref, 'project')}/environments",
        lambda data: _environments.validate_python(data["data"]),
    )


def preview_environment(ref: str, branch: str) -> Call[ProjectEnvironment]:
    """The preview environment of `branch`, made on the server if it does not exist yet."""
    if not isinstance(branch, str) or not branch.strip():
        raise InvalidRequest(f"a preview environment needs a branch name, got {branch!r}")
    return Call(
        "POST",
        f"/api/v1/projects/{_segment(ref, 'project')}/environments",
        ProjectEnvironment.model_validate,
        body={"branch": branch.strip()},
    )


def _key_path(ref: str, env: str) -> str:
    return f"/api/v1/projects/{_segment(ref, 'project')}/environments/{_segment(env, 'environment')}/key"


def environment_key(ref: str, env: str) -> Call[EnvironmentKey]:
    """`env` is the environment's slug: dev, staging, prod or preview-<branch>."""
    return Call("GET", _key_path(ref, env), EnvironmentKey.model_validate)


def rotate_environment_key(ref: str, env: str) -> Call[EnvironmentKey]:
    return Call("POST", _key_path(ref, env) + "/rotate", EnvironmentKey.model_validate)


# -- the worker protocol (conveyor worker) --------------------------------------------------

_lease_reply = TypeAdapter(LeaseReply)
_outcomes = TypeAdapter(list[AttemptOutcome])
_log_entries = TypeAdapter(list[LogEntry])


def _worker(worker_id: str, action: str) -> str:
    return f"/api/v1/workers/{_segment(worker_id, 'worker id')}/{action}"


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


def run_call(worker_id: str, run_id: str, fence: int, op: str, args: dict[str, Any]) -> Call[Any]:
    return Call(
        "POST",
        _worker(worker_id, "calls"),
        lambda data: data["result"],
        body={"run_id": run_id, "fence": fence, "op": op, "args": args},
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
        f"cannot reach Conveyor at {api_url}: is `conveyor dev` running? ({exc.__class__.__name__}: {exc})",
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


def poll_delay(
    run: Run, interval: float, deadline: float | None, now: float, timeout: float | None
) -> float | None:
    """How long `runs.poll` sleeps before looking again: None once the run has ended,
    TimeoutError once the deadline has passed."""
    if run.status.is_final:
        return None
    if deadline is None:
        return interval
    remaining = deadline - now
    if remaining <= 0:
        raise TimeoutError(f"run {run.id} is still {run.status.value} after {timeout:g}s")
    return min(interval, remaining)
