"""What a test run is made of and what a test gets back: runs, waitpoints, journal records,
log lines, and what a test supplies (mocks, token completions). Plain data; the world
(memory.py) moves them."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.models import FINAL_STATUSES, RetryPolicy, RunStatus, Token
from conveyor.sdk.task import Task
from conveyor.serialization import to_json_value
from conveyor.worker.executor import error_dict

if TYPE_CHECKING:
    from conveyor.testing.segment import Segment


class RunStalled(ConveyorError):
    """The run waits on something nothing in the test will ever complete."""

    code = "run_stalled"


def as_stored(value: Any) -> Any:
    """A JSON value as a reader gets it back from the store (tuples become lists, ...)."""
    return json.loads(json.dumps(value))


# -- what a test can inspect ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line a run logged (`logger.info(...)`, or a hook's error): as the dashboard shows it."""

    level: str
    message: str
    attributes: dict[str, Any] | None
    attempt: int
    time: datetime


@dataclass(slots=True)
class JournalRecord:
    """A durable call a run made: its `key` (`step:charge#1`, `wait.for#1`, ...), the `value`
    journaled for it, and for a call that waited, the `result` it waited for."""

    key: str
    value: Any
    result: Any = None
    waitpoint: Waitpoint | None = field(default=None, repr=False)
    attempt: int | None = field(default=None, repr=False)  # the attempt that made the call

    def failed_children(self, before: float) -> bool:
        """Whether this call waited for children and one of them had failed at `before`."""
        waitpoint = self.waitpoint
        if waitpoint is None or waitpoint.kind not in ("run", "batch"):
            return False
        if waitpoint.status != "COMPLETED" or (waitpoint.completed_at or 0.0) > before:
            return False
        result = waitpoint.result or {}
        children = result.get("runs", []) if waitpoint.kind == "batch" else [result]
        return any(not child.get("ok") for child in children)

    def snapshot(self) -> JournalRecord:
        result = copy.deepcopy(self.waitpoint.result) if self.waitpoint is not None else None
        return JournalRecord(self.key, copy.deepcopy(self.value), result)


@dataclass(eq=False)
class Waitpoint:
    """Something a run waits on: a duration, child runs, or a token."""

    id: str
    kind: str  # duration, run, batch, token
    created_at: float
    status: str = "PENDING"
    result: Any = None
    complete_at: float | None = None  # a duration's end, a token's timeout
    completed_at: float | None = None
    run_ids: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    tags: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "complete_at": self.complete_at,
            "result": copy.deepcopy(self.result),
        }

    def token(self) -> Token:
        result = self.result or {}
        return Token.model_validate(
            {
                "id": self.id,
                "url": None,
                "status": self.status,
                "idempotency_key": self.idempotency_key,
                "tags": list(self.tags),
                "timeout_at": self.complete_at,
                "created_at": self.created_at,
                "completed_at": self.completed_at,
                "output": copy.deepcopy(result.get("output")),
                "error": copy.deepcopy(result.get("error")),
            }
        )


@dataclass(eq=False)
class RunState:
    """One run of the test: the root, or a child triggered by another run."""

    id: str
    task_id: str
    task: Task[Any] | None
    payload: Any  # JSON
    created_at: float
    parent_id: str | None = None
    root_id: str | None = None
    batch_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_seq: int = 0  # the highest metadata op of its code applied (conveyor/sdk/metadata.py)
    streams: dict[str, list[Any]] = field(default_factory=dict)
    max_attempts: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_duration: float | None = None
    status: RunStatus = RunStatus.QUEUED
    attempt: int = 0
    started_at: float = 0.0
    attempt_started_at: float = 0.0
    retry_at: float | None = None  # when catch_error asked its last failed attempt be retried
    output: Any = None
    error: dict[str, Any] | None = None
    mocked: bool = False
    journal: dict[str, JournalRecord] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    segment: Segment | None = None
    blocked: bool = False  # its driver waits on the world (a waitpoint, a timer)
    in_hook: bool = False
    compute_used: float = 0.0
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def result(self) -> dict[str, Any]:
        """How the run ended, as a parent waiting for it sees it (`run_result` in
        engine/transitions.py)."""
        ok = self.status == RunStatus.COMPLETED
        return {
            "ok": ok,
            "id": self.id,
            "task_id": self.task_id,
            "status": self.status.value,
            "output": copy.deepcopy(self.output) if ok else None,
            "error": None if ok else (copy.deepcopy(self.error) or {"message": self.status.value}),
        }


# -- what a test supplies ----------------------------------------------------------------------


class Mock:
    """Replaces a task's runs in a test: each run of it ends at once with `output` (a value, or
    a function of the payload) or fails with `error`. `calls` lists the payloads it got."""

    def __init__(self, task: Task[Any] | str, *, output: Any = None, error: Any = None) -> None:
        task_id = task.id if isinstance(task, Task) else task
        if not isinstance(task_id, str) or not task_id:
            raise TypeError("testing.mock takes a task (or a task id)")
        if output is not None and error is not None:
            raise TypeError("testing.mock takes output or error, not both")
        self.task_id = task_id
        self.output = output
        self.error = error
        self.calls: list[Any] = []

    def __repr__(self) -> str:
        return f"<Mock of task {self.task_id!r}: {len(self.calls)} call(s)>"

    def outcome(self, payload: Any) -> tuple[RunStatus, Any, dict[str, Any] | None]:
        self.calls.append(copy.deepcopy(payload))
        if self.error is not None:
            error = self.error
            if isinstance(error, BaseException):
                return RunStatus.FAILED, None, error_dict(error)
            if isinstance(error, dict):
                return RunStatus.FAILED, None, as_stored(error)
            return RunStatus.FAILED, None, {"name": "Error", "message": str(error), "code": None}
        output = self.output(payload) if callable(self.output) else self.output
        return (
            RunStatus.COMPLETED,
            to_json_value(output, f"the output of mock {self.task_id!r}"),
            None,
        )


class TokenCompletion:
    """How a test completes a token a run waits on: the first token waited on that matches
    (its idempotency key, all of `tags`, or any token when neither is given) is completed with
    `data`, or with `data(token)` when `data` is a function. Each completion is used once."""

    def __init__(
        self, data: Any = None, *, idempotency_key: str | None = None, tags: list[str] | None = None
    ) -> None:
        self.data = data
        self.idempotency_key = idempotency_key
        self.tags = list(tags or [])
        self.used_by: str | None = None  # the token it completed

    def __repr__(self) -> str:
        match = self.idempotency_key or ",".join(self.tags) or "any token"
        return f"<TokenCompletion of {match}{' (used)' if self.used_by else ''}>"

    def matches(self, waitpoint: Waitpoint) -> bool:
        if self.used_by is not None:
            return False
        if self.idempotency_key is not None and waitpoint.idempotency_key != self.idempotency_key:
            return False
        return all(tag in waitpoint.tags for tag in self.tags)
