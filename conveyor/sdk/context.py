"""`ctx`: what a run function knows about its run, and the scope of the attempt it runs in.

The executor enters an `AttemptScope` around each attempt (and each hook). Logs, `print`,
standard `logging` and triggers made inside find it through a context variable, so many
attempts can share one process and one event loop without mixing their logs.
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float = 0.0
    max_attempts: int = 1
    max_duration: float | None = None
    parent_id: str | None = None
    root_id: str | None = None
    batch_id: str | None = None
    concurrency_key: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    number: int  # 1-based
    started_at: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str
    file: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Passed as the run function's second argument: `ctx.run.id`, `ctx.attempt.number`, ..."""

    run: RunInfo
    attempt: AttemptInfo
    task: TaskInfo
    environment: str  # dev, staging, prod or preview
    queue: str = ""
    machine: str = ""


class Runtime(Protocol):
    """The platform as seen from inside an attempt (the executor provides it)."""

    def log(
        self, scope: AttemptScope, level: str, message: str, attributes: dict[str, Any] | None
    ) -> None: ...


class Durable(Protocol):
    """The durable calls of an attempt (the executor's replay of its journal)."""

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    async def remembered(self, kind: str, make: Callable[[], Any]) -> Any: ...

    async def trigger(
        self,
        kind: str,
        name: str,
        items: list[tuple[str, Any, dict[str, Any]]],
        *,
        wait: bool,
        batch: bool,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]: ...

    async def sleep_until(self, kind: str, until: float, seconds: float | None = None) -> None: ...

    async def create_token(
        self,
        timeout: float | None,
        idempotency_key: str | None,
        tags: list[str] | None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]: ...

    async def wait_token(self, token_id: str) -> dict[str, Any]: ...

    async def complete_token(self, token_id: str, data: Any) -> None: ...

    async def stream(self, name: str, source: Any) -> list[Any]: ...


@dataclass(slots=True)
class AttemptScope:
    """One attempt (or hook) in progress: its context and where its logs and calls go."""

    ctx: Context
    runtime: Runtime
    durable: Durable | None = None  # None in hooks: they run after the run ended
    metadata: Any = None  # the attempt's RunMetadata (conveyor/sdk/metadata.py); None in hooks
    # the attempt's or hook job's fence: its log lines carry it (conveyor/protocol.py)
    fence: int = 0
    # usage: the compute seconds of the run's ended attempts and of this attempt before it
    # last suspended, and when this segment of it began (time.monotonic)
    compute_before: float = 0.0
    attempt_compute_before: float = 0.0
    segment_started: float = field(default_factory=time.monotonic)
    _seq: itertools.count = field(init=False)

    def __post_init__(self) -> None:
        # Log lines are keyed (run, attempt, seq). An attempt may run in several segments (it
        # suspends and resumes) and a hook logs after it: starting each scope's count at the
        # clock in nanoseconds keeps every line's seq unique and in time order.
        self._seq = itertools.count(time.time_ns())

    def next_seq(self) -> int:
        return next(self._seq)

    def log(self, level: str, message: str, attributes: dict[str, Any] | None = None) -> None:
        self.runtime.log(self, level, message, attributes)


_current: contextvars.ContextVar[AttemptScope | None] = contextvars.ContextVar(
    "conveyor_attempt", default=None
)


def current_scope() -> AttemptScope | None:
    """The attempt this code runs in, or None outside a run."""
    return _current.get()


def enter_scope(scope: AttemptScope) -> contextvars.Token[AttemptScope | None]:
    return _current.set(scope)


def leave_scope(token: contextvars.Token[AttemptScope | None]) -> None:
    _current.reset(token)


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


CallbackT = Callable[..., Any]
