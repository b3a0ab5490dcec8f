"""`task` and `schema_task`: turn a function into a task that can be triggered and run.

    @task(id="send-email", queue=emails, max_duration=60, retry={"max_attempts": 5})
    async def send_email(payload: dict, ctx) -> dict: ...

A `Task` only describes: running it is the worker's job, triggering it goes through the
attempt's runtime (inside a run) or the HTTP client (anywhere else).

A task is typed by its run function: `Task[PayloadT, OutputT]`, the type of its payload (the
schema's model for `schema_task`) and of what it returns (awaited, for an `async def`). So
`send_email.trigger(p)` checks `p`, and `await send_email.trigger_and_wait(p)` is a
`Result[dict]`. The types are for type checkers only; at run time payloads are checked as
before (JSON, or the schema).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, NotRequired, Protocol, TypedDict, overload

from pydantic import BaseModel, ValidationError
from typing_extensions import TypeVar

from conveyor.durations import parse_duration
from conveyor.errors import ConveyorError, PayloadError, TaskDefinitionError, validation_summary
from conveyor.models import MACHINES, RetryPolicy, TaskDefinition, TaskSchedule
from conveyor.models import dump_trigger_options as trigger_options
from conveyor.results import (
    BatchHandle,
    BatchResult,
    Result,
    RunHandle,
    batch_result_from,
    result_from,
)
from conveyor.sdk.context import current_scope
from conveyor.sdk.hooks import ENDING_HOOKS, global_hooks
from conveyor.sdk.idempotency import batch_key_options, scoped
from conveyor.sdk.queue import Queue, as_queue
from conveyor.serialization import to_json_value

# a task's payload type is only ever given to it (contravariant), its output only given back
PayloadT = TypeVar("PayloadT", contravariant=True, default=Any)
OutputT = TypeVar("OutputT", covariant=True, default=Any)
# the same, as solved from one decorated function
P = TypeVar("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)  # a schema_task's schema

_RETRY_KEYS = set(RetryPolicy.model_fields)
# the hooks the engine knows of (on_wait and on_resume are the attempt's own business)
ENGINE_HOOKS = ("on_start", *ENDING_HOOKS)


class BatchItem(TypedDict, Generic[P]):
    """One run of a batch: its payload, and its trigger options (the names of `trigger`'s)."""

    payload: P
    options: NotRequired[Mapping[str, Any]]


class Task(Generic[PayloadT, OutputT]):
    """A task: an id, a run function, and how its runs are queued, retried and limited.

    `Task[PayloadT, OutputT]`: what its run function takes as payload and what it returns."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        id: str,
        queue: Queue | str | dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
        max_duration: float | None = None,
        machine: str | None = None,
        ttl: float | str | None = None,
        schema: type[BaseModel] | None = None,
        description: str | None = None,
        on_start: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        on_failure: Callable[..., Any] | None = None,
        on_cancel: Callable[..., Any] | None = None,
        on_complete: Callable[..., Any] | None = None,
        on_wait: Callable[..., Any] | None = None,
        on_resume: Callable[..., Any] | None = None,
        catch_error: Callable[..., Any] | None = None,
        schedule: TaskSchedule | None = None,
    ) -> None:
        if (
            not isinstance(id, str)
            or not id
            or len(id) > 128
            or any(c.isspace() for c in id)
            or "/" in id
        ):
            raise TaskDefinitionError(
                f"task id must be 1 to 128 characters without spaces or '/', got {id!r}"
            )
        if not callable(fn):
            raise TaskDefinitionError(f"task {id!r}: the run function is not callable")
        self.id = id
        self.fn: Callable[..., Any] = fn
        self.queue = as_queue(queue, id)
        self.retry = dict(retry or {})
        unknown = set(self.retry) - _RETRY_KEYS
        if unknown:
            raise TaskDefinitionError(
                f"task {id!r}: unknown retry option(s) {sorted(unknown)}; use {sorted(_RETRY_KEYS)}"
            )
        try:
            RetryPolicy(**self.retry)
        except ValidationError as exc:
            raise TaskDefinitionError(
                f"task {id!r}: invalid retry option: {validation_summary(exc)}"
            ) from exc
        if max_duration is not None and (
            isinstance(max_duration, bool)
            or not isinstance(max_duration, int | float)
            or max_duration <= 0
        ):
            raise TaskDefinitionError(
                f"task {id!r}: max_duration is seconds > 0, got {max_duration!r}"
            )
        if machine is not None and machine not in MACHINES:
            raise TaskDefinitionError(
                f"task {id!r}: unknown machine {machine!r}; one of {', '.join(MACHINES)}"
            )
        if ttl is not None:
            try:
                parse_duration(ttl, name="ttl")
            except ValueError as exc:
                raise TaskDefinitionError(f"task {id!r}: {exc}") from exc
        self.max_duration = max_duration
        self.machine = machine
        self.ttl = ttl
        self.schema = schema
        self.description = description or (inspect.getdoc(fn) or None)
        self.hooks = {
            "on_start": on_start,
            "on_success": on_success,
            "on_failure": on_failure,
            "on_cancel": on_cancel,
            "on_complete": on_complete,
            "on_wait": on_wait,
            "on_resume": on_resume,
        }
        for name, hook in self.hooks.items():
            if hook is not None and not callable(hook):
                raise TaskDefinitionError(f"task {id!r}: {name} must be a function")
        if catch_error is not None and not callable(catch_error):
            raise TaskDefinitionError(f"task {id!r}: catch_error must be a function")
        self.catch_error = catch_error
        self.schedule = schedule  # a scheduled task (`@schedules.task`)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.takes_ctx = _takes_ctx(fn, id)
        code = getattr(fn, "__code__", None)
        self.file: str | None = code.co_filename if code else None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.id!r}>"

    # -- what the platform needs to know ---------------------------------------------------

    def definition(
        self,
        *,
        default_retry: RetryPolicy,
        max_duration: float | None,
        machine: str,
        retries_enabled: bool = True,
    ) -> TaskDefinition:
        """The task's effective settings: its own options over the project's defaults."""
        retry = RetryPolicy.model_validate({**default_retry.model_dump(), **self.retry})
        if not retries_enabled:
            retry = retry.model_copy(update={"max_attempts": 1})
        ttl = parse_duration(self.ttl, name="ttl") if self.ttl is not None else None
        return TaskDefinition(
            id=self.id,
            queue=self.queue.spec(),  # with its rate limit and weights
            retry=retry,
            max_duration=self.max_duration if self.max_duration is not None else max_duration,
            machine=self.machine or machine,
            ttl=ttl,
            hooks=[h for h in ENGINE_HOOKS if self.hooks_for(h)],
            payload_schema=self.schema.model_json_schema() if self.schema is not None else None,
            description=self.description,
            file=self.file,
            is_async=self.is_async,
            schedule=self.schedule,
        )

    def prepare_payload(self, payload: Any) -> Any:
        """The payload as JSON, validated against the schema when the task has one."""
        if self.schema is not None:
            if isinstance(payload, self.schema):
                return payload.model_dump(mode="json")
            try:
                model = self.schema.model_validate(payload)
            except ValidationError as exc:
                raise PayloadError(
                    f"payload does not match the schema of task {self.id!r}: "
                    f"{validation_summary(exc)}"
                ) from exc
            return model.model_dump(mode="json")
        return to_json_value(payload)

    def parse_payload(self, payload: Any) -> Any:
        """What the run function receives: the schema's model, or the JSON payload as is."""
        if self.schema is None:
            return payload
        try:
            return self.schema.model_validate(payload)
        except ValidationError as exc:
            raise PayloadError(
                f"payload does not match the schema of task {self.id!r}: {validation_summary(exc)}"
            ) from exc

    def hooks_for(self, name: str) -> list[Callable[..., Any]]:
        """The hooks of `name` a run of this task calls: its own, then the project's
        (`conveyor.hooks`)."""
        own = self.hooks.get(name)
        return ([own] if own is not None else []) + global_hooks(name)

    # -- errors ------------------------------------------------------------------------------

    async def caught(self, payload: Any, error: BaseException, ctx: Any) -> CatchDecision | None:
        """What the task's `catch_error(payload, error, ctx)` decides for an attempt that
        raised: `{"skip_retrying": True}`, `{"retry_at": datetime}` (as epoch seconds here), or
        None to retry as the policy says. ValueError names an answer it cannot take."""
        if self.catch_error is None:
            return None
        if inspect.iscoroutinefunction(self.catch_error):
            answer = await self.catch_error(payload, error, ctx)
        else:  # in a thread, as plain hooks run: it must not hold the event loop
            answer = await asyncio.to_thread(self.catch_error, payload, error, ctx)
        if inspect.isawaitable(answer):
            answer = await answer
        return catch_decision(answer)

    # -- triggering ------------------------------------------------------------------------

    @overload
    async def trigger(
        self: Task[None, OutputT], payload: None = None, **options: Any
    ) -> RunHandle[OutputT]: ...
    @overload
    async def trigger(self, payload: PayloadT, **options: Any) -> RunHandle[OutputT]: ...
    async def trigger(self, payload: Any = None, **options: Any) -> RunHandle[OutputT]:
        """Start a run of this task; returns at once with its handle. Inside a run it is a
        durable call: a replay of the parent does not trigger the child again."""
        body = self.prepare_payload(payload)
        scope = current_scope()
        opts = options_for(options, in_run=scope is not None and scope.durable is not None)
        if scope is not None and scope.durable is not None:
            answer = await scope.durable.trigger(
                "trigger", self.id, [(self.id, body, opts)], wait=False, batch=False
            )
            run = answer["runs"][0]
            return RunHandle(run["id"], self.id, run.get("is_cached", False))
        from conveyor.client.default import default_client

        return await default_client().tasks.trigger(self.id, body, **opts)

    async def batch_trigger(
        self,
        items: list[BatchItem[PayloadT]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> BatchHandle[OutputT]:
        """Start one run per item (`{"payload": ..., "options": {...}}`), up to 1,000 at once.
        With `idempotency_key`, a later call with the key returns this batch (`is_cached`)."""
        prepared = self._prepare_items(items)
        scope = current_scope()
        in_run = scope is not None and scope.durable is not None
        keyed = batch_key_options(idempotency_key, idempotency_key_ttl, in_run=in_run)
        if scope is not None and scope.durable is not None:
            answer = await scope.durable.trigger(
                "batch_trigger", self.id, prepared, wait=False, batch=True, **keyed
            )
            return BatchHandle(
                answer["batch_id"],
                [RunHandle(r["id"], self.id, r.get("is_cached", False)) for r in answer["runs"]],
                bool(answer.get("is_cached")),
            )
        from conveyor.client.default import default_client

        return await default_client().tasks.batch_trigger(
            self.id, [{"payload": p, "options": o} for _, p, o in prepared], **keyed
        )

    @overload
    async def trigger_and_wait(
        self: Task[None, OutputT], payload: None = None, **options: Any
    ) -> Result[OutputT]: ...
    @overload
    async def trigger_and_wait(self, payload: PayloadT, **options: Any) -> Result[OutputT]: ...
    async def trigger_and_wait(self, payload: Any = None, **options: Any) -> Result[OutputT]:
        """Start a run and wait for it to end. Inside a run the parent suspends meanwhile (no
        slot held); from a backend this polls. Never raises for the child's failure: check
        `result.ok`, or `result.unwrap()` to raise TaskRunFailed."""
        body = self.prepare_payload(payload)
        scope = current_scope()
        opts = options_for(options, in_run=scope is not None and scope.durable is not None)
        if scope is not None and scope.durable is not None:
            answer = await scope.durable.trigger(
                "trigger_and_wait", self.id, [(self.id, body, opts)], wait=True, batch=False
            )
            return result_from(answer["result"])
        from conveyor.client.default import default_client

        client = default_client()
        handle = await client.tasks.trigger(self.id, body, **opts)
        run = await client.runs.poll(handle.id)
        ok = run.status == "COMPLETED"
        output: Any = run.output if ok else None  # JSON: what the run function returned
        return Result(
            ok=ok,
            id=run.id,
            task_id=self.id,
            output=output,
            error=None
            if ok
            else (run.error.model_dump() if run.error else {"message": run.status}),
        )

    async def batch_trigger_and_wait(
        self,
        items: list[BatchItem[PayloadT]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> BatchResult[OutputT]:
        """Start one run per item and wait for all of them; `results.runs` is in input order.
        With `idempotency_key`, a later call with the key waits for this batch again."""
        prepared = self._prepare_items(items)
        scope = current_scope()
        if scope is None or scope.durable is None:
            raise ConveyorError(
                "batch_trigger_and_wait waits durably, so it only works inside a task's run "
                "function; from a backend, use batch_trigger and poll the runs"
            )
        keyed = batch_key_options(idempotency_key, idempotency_key_ttl, in_run=True)
        answer = await scope.durable.trigger(
            "batch_trigger_and_wait", self.id, prepared, wait=True, batch=True, **keyed
        )
        return batch_result_from(answer)

    def _prepare_items(self, items: Any) -> list[tuple[str, Any, dict[str, Any]]]:
        scope = current_scope()
        in_run = scope is not None and scope.durable is not None
        prepared = []
        for item in _items(items):
            opts = options_for(item.get("options") or {}, in_run=in_run)
            prepared.append((self.id, self.prepare_payload(item.get("payload")), opts))
        return prepared


class CatchDecision(TypedDict, total=False):
    """What `catch_error` decided: not to retry, or to retry at a time (epoch seconds)."""

    skip_retrying: bool
    retry_at: float


def catch_decision(answer: Any) -> CatchDecision | None:
    """`catch_error`'s answer as a decision; ValueError names one it cannot take."""
    if answer is None or answer in ({"skip_retrying": False}, {"retry_at": None}):
        return None  # the policy's retry, said explicitly
    if isinstance(answer, dict) and answer.get("skip_retrying") is True and len(answer) == 1:
        return {"skip_retrying": True}
    if isinstance(answer, dict) and set(answer) == {"retry_at"}:
        when = answer["retry_at"]
        if isinstance(when, datetime):
            moment = when if when.tzinfo else when.replace(tzinfo=UTC)
            return {"retry_at": moment.timestamp()}
        if isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
            return {"retry_at": float(when)}
    raise ValueError(
        'catch_error returns None, {"skip_retrying": True} or {"retry_at": <a datetime>}, '
        f"got {answer!r}"
    )


def options_for(options: Any, *, in_run: bool) -> dict[str, Any]:
    """Trigger options as the API takes them; inside a run a plain-text idempotency key is the
    run's own (conveyor/sdk/idempotency.py)."""
    opts = trigger_options(options)
    key = options.get("idempotency_key") if in_run and isinstance(options, Mapping) else None
    if key is not None:
        opts["idempotency_key"] = scoped(key)
    return opts


def _items(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise PayloadError("batch items must be a list of {'payload': ..., 'options': {...}}")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"payload", "options"}:
            raise PayloadError(
                f"items[{index}] must be a dict with 'payload' and optionally 'options'"
            )
    return items


def _takes_ctx(fn: Callable[..., Any], task_id: str) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    if len(params) not in (1, 2):
        raise TaskDefinitionError(
            f"task {task_id!r}: the run function takes (payload) or (payload, ctx), "
            f"not {len(params)} arguments"
        )
    return len(params) == 2


class TaskDecorator(Protocol):
    """What `task(...)` returns: it makes a `Task[P, R]` of a run function taking `(payload: P)`
    or `(payload: P, ctx)` and returning `R`, or a coroutine of `R` for an `async def`."""

    # The coroutine forms come first: an `async def` matches the plain forms too, with the
    # coroutine as its output. `Coroutine` rather than `Awaitable`: when the function has a
    # parameter typed Any (unannotated, or a bare `dict`), mypy takes the first matching form
    # only if every matching form has the same parameter type once solved, else it gives Any.
    @overload
    def __call__(self, fn: Callable[[P, Any], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[[P], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[[P, Any], R], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[[P], R], /) -> Task[P, R]: ...


class SchemaTaskDecorator(Protocol[M]):
    """What `schema_task(schema=Model, ...)` returns: like `TaskDecorator`, with the payload
    typed as the schema's model (the run function receives the model)."""

    @overload
    def __call__(self, fn: Callable[[M, Any], Coroutine[Any, Any, R]], /) -> Task[M, R]: ...
    @overload
    def __call__(self, fn: Callable[[M], Coroutine[Any, Any, R]], /) -> Task[M, R]: ...
    @overload
    def __call__(self, fn: Callable[[M, Any], R], /) -> Task[M, R]: ...
    @overload
    def __call__(self, fn: Callable[[M], R], /) -> Task[M, R]: ...


def task(
    *,
    id: str,
    queue: Queue | str | dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    max_duration: float | None = None,
    machine: str | None = None,
    ttl: float | str | None = None,
    description: str | None = None,
    on_start: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_cancel: Callable[..., Any] | None = None,
    on_complete: Callable[..., Any] | None = None,
    on_wait: Callable[..., Any] | None = None,
    on_resume: Callable[..., Any] | None = None,
    catch_error: Callable[..., Any] | None = None,
) -> TaskDecorator:
    """Make a task of a function taking `(payload)` or `(payload, ctx)`, sync or async."""

    def wrap(fn: Callable[..., Any]) -> Task[Any, Any]:
        return Task(
            fn,
            id=id,
            queue=queue,
            retry=retry,
            max_duration=max_duration,
            machine=machine,
            ttl=ttl,
            description=description,
            on_start=on_start,
            on_success=on_success,
            on_failure=on_failure,
            on_cancel=on_cancel,
            on_complete=on_complete,
            on_wait=on_wait,
            on_resume=on_resume,
            catch_error=catch_error,
        )

    return wrap


def schema_task(
    *,
    id: str,
    schema: type[M],
    queue: Queue | str | dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    max_duration: float | None = None,
    machine: str | None = None,
    ttl: float | str | None = None,
    description: str | None = None,
    on_start: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_cancel: Callable[..., Any] | None = None,
    on_complete: Callable[..., Any] | None = None,
    on_wait: Callable[..., Any] | None = None,
    on_resume: Callable[..., Any] | None = None,
    catch_error: Callable[..., Any] | None = None,
) -> SchemaTaskDecorator[M]:
    """Like `task`, with a pydantic model that validates the payload when it is triggered and
    again before each attempt; the run function receives the model, and the task's payload
    type is the model (a dict is validated too, but a type checker wants the model)."""
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TaskDefinitionError(f"schema_task {id!r}: schema must be a pydantic BaseModel class")

    def wrap(fn: Callable[..., Any]) -> Task[Any, Any]:
        return Task(
            fn,
            id=id,
            queue=queue,
            retry=retry,
            max_duration=max_duration,
            machine=machine,
            ttl=ttl,
            schema=schema,
            description=description,
            on_start=on_start,
            on_success=on_success,
            on_failure=on_failure,
            on_cancel=on_cancel,
            on_complete=on_complete,
            on_wait=on_wait,
            on_resume=on_resume,
            catch_error=catch_error,
        )

    return wrap
