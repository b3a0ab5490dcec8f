"""Every operation of the public API, written once for `Client`, `AsyncClient` and the default
client: `client.tasks`, `.runs`, `.queues`, `.waitpoints`, `.projects`, `.deployments`.

An operation is a method that builds its `Call` (or, for `runs.poll`, yields its steps) and
never sends anything; `@operation` turns it into a plain method on a namespace whose sender is
a `Sender` (`Client`: it returns the result) and into a coroutine method on one whose sender is
an `AsyncSender` (`AsyncClient`, `conveyor.runs`: it must be awaited). Types follow: mypy sees
`Client().runs.retrieve(...)` as a `Run` and `AsyncClient().runs.retrieve(...)` as an awaitable
of one. A new operation is one method here; both clients have it at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from pydantic import TypeAdapter

from conveyor.client._calls import (
    MAX_BATCH_ITEMS,
    UNSET,
    Answer,
    Call,
    Page,
    Plan,
    RunPage,
    Sleep,
    Steps,
    merge_options,
    plan,
    segment,
    time_param,
    traced,
)
from conveyor.client._realtime import run_subscription, stream_subscription
from conveyor.errors import InvalidRequest
from conveyor.models import (
    BulkAction,
    LogLine,
    QueueInfo,
    Run,
    RunStatus,
    TaskDefinition,
    Token,
    Trace,
    TriggerOptions,
    Usage,
)
from conveyor.models import dump_trigger_options as trigger_options
from conveyor.results import BatchHandle, RunHandle
from conveyor.serialization import to_json_value

P = ParamSpec("P")
T = TypeVar("T")

# -- senders: what carries a plan out ---------------------------------------------------------


class Sender:
    """Carries plans out synchronously: each request is sent and each pause slept, blocking."""

    def request(self, call: Call[Any]) -> Answer:
        raise NotImplementedError

    def run(self, plan: Plan[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                reply = None
            else:
                reply = self.request(step)


class AsyncSender:
    """Carries plans out asynchronously: each request and each pause is awaited."""

    async def request(self, call: Call[Any]) -> Answer:
        raise NotImplementedError

    async def run(self, plan: Plan[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                reply = None
            else:
                reply = await self.request(step)


S = TypeVar("S", bound=Sender | AsyncSender, covariant=True)


class Namespace(Generic[S]):
    """A group of operations sent by one sender (`client.runs` sends with its client's)."""

    def __init__(self, sender: S) -> None:
        self._sender = sender


_RESULT = re.compile(r"(?:Call|Steps)\[(.*)\]")


class operation(Generic[P, T]):
    """An operation of the API: a method building its call, sent by the namespace's sender."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T] | Steps[T]]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__
        # what help() shows: the method returning its result (a `Run`), not the call it builds
        signature = inspect.signature(build)
        result = _RESULT.fullmatch(str(signature.return_annotation))
        self.__signature__ = signature.replace(
            return_annotation=result[1] if result else signature.return_annotation
        )
        self.bound_signature = self.__signature__.replace(
            parameters=list(signature.parameters.values())[1:]
        )

    def __repr__(self) -> str:
        return f"<operation {self.name}{self.bound_signature}>"

    def __call__(self, namespace: Namespace[Any], *args: Any, **kwargs: Any) -> Any:
        """`Runs.retrieve(client.runs, run_id)`, as with any method called on its class."""
        return self.__get__(namespace, type(namespace))(*args, **kwargs)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, namespace: None, owner: type[Any]) -> operation[P, T]: ...

    @overload
    def __get__(self, namespace: Namespace[Sender], owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, namespace: Namespace[AsyncSender], owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, namespace: Namespace[Any] | None, owner: type[Any]) -> Any:
        if namespace is None:
            return self
        build, sender = self.build, namespace._sender
        bound: Any
        if isinstance(sender, AsyncSender):

            async def bound(*args: Any, **kwargs: Any) -> Any:
                return await sender.run(plan(build(namespace, *args, **kwargs)))

        else:

            def bound(*args: Any, **kwargs: Any) -> Any:
                return sender.run(plan(build(namespace, *args, **kwargs)))

        functools.update_wrapper(bound, build)
        bound.__signature__ = self.bound_signature
        del bound.__wrapped__  # the signature above, not the builder's
        # kept on the instance: later lookups find it there and skip this descriptor
        namespace.__dict__[self.name] = bound
        return bound


# -- the operations ---------------------------------------------------------------------------

_tasks = TypeAdapter(list[TaskDefinition])
_logs = TypeAdapter(list[LogLine])
_bulk_actions = TypeAdapter(list[BulkAction])
_queues = TypeAdapter(list[QueueInfo])


def _handle(task_id: str) -> Callable[[Any], RunHandle]:
    return lambda data: RunHandle(
        str(data["id"]), str(data.get("task_id") or task_id), bool(data.get("is_cached"))
    )


def _batch_items(items: Any, *, by_task: bool) -> list[dict[str, Any]]:
    """A batch's items for the body; `by_task`: each names its task (an id or a Task)."""
    fields = {"task", "payload", "options"} if by_task else {"payload", "options"}
    shape = "'payload' and optionally 'options'"
    if by_task:
        shape = "'task', " + shape
    if isinstance(items, Mapping | str | bytes) or not isinstance(items, Iterable):
        raise InvalidRequest("batch items must be a list of {'payload': ..., 'options': {...}}")
    items = list(items)
    if not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH_ITEMS} items, got {len(items)}")
    wire = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) - fields:
            raise InvalidRequest(f"items[{index}] must be a dict with {shape}")
        out = {
            "payload": to_json_value(item.get("payload"), f"items[{index}].payload"),
            "options": traced(trigger_options(item.get("options"), f"items[{index}]: ")),
        }
        if by_task:
            task = item.get("task")
            task_id = getattr(task, "id", task)  # a Task object, or its id
            if not isinstance(task_id, str) or not task_id:
                raise InvalidRequest(f"items[{index}].task: a task or its id, got {task!r}")
            out = {"task": task_id} | out
        wire.append(out)
    return wire


def _batch_key(key: Any, ttl: Any) -> dict[str, Any]:
    """A batch's own idempotency key and its TTL, for the body (the server checks them)."""
    if key is None:  # a TTL alone has no effect, as a trigger's (the server checks its form)
        return {} if ttl is None else {"idempotency_key_ttl": ttl}
    if not isinstance(key, str) or not key:
        raise InvalidRequest(f"a batch's idempotency_key is non-empty text, got {key!r}")
    return {"idempotency_key": str(key)} | ({"idempotency_key_ttl": ttl} if ttl is not None else {})


def _batch_handle(task_id: str) -> Callable[[Any], BatchHandle]:
    handle = _handle(task_id)
    return lambda data: BatchHandle(
        str(data["batch_id"]), [handle(run) for run in data["runs"]], bool(data.get("is_cached"))
    )


class Tasks(Namespace[S]):
    """`client.tasks`: trigger tasks and read their definitions."""

    @operation
    def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> Call[RunHandle]:
        """Start a run of `task_id` with `payload` (JSON; pydantic models and datetimes are
        converted). Options go as keywords (`tags=["a"]`, `delay="1h"`) or as `options=`."""
        body = {
            "payload": to_json_value(payload),
            "options": traced(merge_options(options, kwargs)),
        }
        path = f"/api/v1/tasks/{segment(task_id, 'task id')}/trigger"
        return Call("POST", path, _handle(task_id), body=body)

    @operation
    def batch_trigger(
        self,
        task_id: str,
        items: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> Call[BatchHandle]:
        """Start one run per item (`{"payload": ..., "options": {...}}`), 1 to 1,000,
        all or none. With `idempotency_key` (held `idempotency_key_ttl`, 30 days by default),
        a later call with the key returns this batch and makes no run (`is_cached`)."""
        wire = _batch_items(items, by_task=False)
        body = {"items": wire, **_batch_key(idempotency_key, idempotency_key_ttl)}
        path = f"/api/v1/tasks/{segment(task_id, 'task id')}/batch"
        return Call("POST", path, _batch_handle(task_id), body=body)

    @operation
    def batch_trigger_by_task(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> Call[BatchHandle]:
        """Start one run per item (`{"task": "task-id", "payload": ..., "options": {...}}`),
        each of its own task, 1 to 1,000, all or none; `idempotency_key` as `batch_trigger`."""
        wire = _batch_items(items, by_task=True)
        body = {"items": wire, **_batch_key(idempotency_key, idempotency_key_ttl)}
        return Call("POST", "/api/v1/batches", _batch_handle(""), body=body)

    @operation
    def retrieve(self, task_id: str) -> Call[TaskDefinition]:
        """The definition of a task the workers serve; NotFound if none does."""
        path = f"/api/v1/tasks/{segment(task_id, 'task id')}"
        return Call("GET", path, TaskDefinition.model_validate)

    @operation
    def list(self) -> Call[list[TaskDefinition]]:
        """Every task the environment's workers serve."""
        return Call("GET", "/api/v1/tasks", lambda data: _tasks.validate_python(data["data"]))


def _run(run_id: str) -> Call[Run]:
    return Call("GET", f"/api/v1/runs/{segment(run_id, 'run id')}", Run.model_validate)


def _each(items: Any, parse: Callable[[Any], T]) -> Any:
    """`items` (an iterator, or an async one) with each item parsed."""
    if hasattr(items, "__aiter__"):

        async def parsed_async() -> Any:
            async for item in items:
                yield parse(item)

        return parsed_async()
    return (parse(item) for item in items)


def _bulk_body(
    status: str | RunStatus | Iterable[str | RunStatus] | None,
    task: str | None,
    tag: str | None,
    version: str | None,
    created_from: datetime | str | float | None,
    created_to: datetime | str | float | None,
    since: str | float | None,
    all: bool,
) -> dict[str, Any]:
    """The filters of a bulk action as its body: only those given."""
    body: dict[str, Any] = {}
    if status is not None:
        statuses = [status] if isinstance(status, str) else [*status]
        body["status"] = [str(s.value if isinstance(s, RunStatus) else s) for s in statuses]
    for name, value in (("task", task), ("tag", tag), ("version", version), ("since", since)):
        if value is not None:
            body[name] = value
    if created_from is not None:
        body["created_from"] = time_param(created_from, "created_from")
    if created_to is not None:
        body["created_to"] = time_param(created_to, "created_to")
    if all:
        body["all"] = True
    return body


def _bulk_action(action_id: str, action: str = "") -> str:
    return f"/api/v1/bulk-actions/{segment(action_id, 'bulk action id')}{action}"


class Runs(Namespace[S]):
    """`client.runs`: read, list, cancel, replay and wait for runs."""

    @operation
    def retrieve(self, run_id: str) -> Call[Run]:
        """The run with its attempt count and finished attempts (`attempt_list`)."""
        return _run(run_id)

    @operation
    def cancel(self, run_id: str) -> Call[Run]:
        """Cancel a run that has not ended; Conflict if it has."""
        path = f"/api/v1/runs/{segment(run_id, 'run id')}/cancel"
        return Call("POST", path, Run.model_validate)

    @operation
    def replay(self, run_id: str, payload: Any = UNSET) -> Call[RunHandle]:
        """A new run of the same task and options, with the same payload unless `payload` is
        given."""
        body = {} if payload is UNSET else {"payload": to_json_value(payload)}
        path = f"/api/v1/runs/{segment(run_id, 'run id')}/replay"
        return Call("POST", path, _handle(""), body=body)

    @operation
    def update_metadata(self, run_id: str, metadata: Mapping[str, Any]) -> Call[Run]:
        """Replace the run's metadata (a JSON object of at most 256 KB); subscribers see it."""
        if not isinstance(metadata, Mapping):
            raise InvalidRequest(f"metadata must be a dict, got {type(metadata).__name__}")
        body = {"metadata": to_json_value(dict(metadata), "metadata")}
        path = f"/api/v1/runs/{segment(run_id, 'run id')}/metadata"
        return Call("PUT", path, Run.model_validate, body=body)

    def subscribe(
        self, run_id: str | None = None, *, tag: str | None = None, batch_id: str | None = None
    ) -> Any:
        """Snapshots of a run at each change, ending when it ends (`async for run in ...`; a
        plain `for` on `Client`); with `tag=`, of every run carrying the tag, until you stop;
        with `batch_id=`, of the runs of a batch, ending when all have ended. A dropped
        connection is resumed where it stopped."""
        sub = run_subscription(run_id, tag, batch_id)
        return _each(self._sender.events(sub), Run.model_validate)  # type: ignore[union-attr]

    def stream(self, run_id: str, name: str) -> Any:
        """The chunks of a run's stream `name` from the first, then live as the run writes them
        (`streams.pipe`); ends when the stream ends."""
        return self._sender.events(stream_subscription(run_id, name))  # type: ignore[union-attr]

    @operation
    def logs(self, run_id: str) -> Call[list[LogLine]]:
        """The run's log lines, oldest first."""
        path = f"/api/v1/runs/{segment(run_id, 'run id')}/logs"
        return Call("GET", path, lambda data: _logs.validate_python(data["data"]))

    @operation
    def trace(self, run_id: str) -> Call[Trace]:
        """The run's spans as a tree: attempts, and the steps, triggers,
        waits and tokens of each."""
        path = f"/api/v1/runs/{segment(run_id, 'run id')}/trace"
        return Call("GET", path, Trace.model_validate)

    @operation
    def bulk_cancel(
        self,
        *,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | None = None,
        tag: str | None = None,
        version: str | None = None,
        created_from: datetime | str | float | None = None,
        created_to: datetime | str | float | None = None,
        since: str | float | None = None,
        all: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[BulkAction]:
        """Start canceling every unfinished run matching all the filters given (at least one, or
        `all=True`), made by now; the platform does it a chunk of runs at a time. Follow it
        with `bulk_action(id)` or `wait_bulk_action(id)`. `since` is a duration ("1h")."""
        body = _bulk_body(status, task, tag, version, created_from, created_to, since, all)
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return Call("POST", "/api/v1/runs/bulk/cancel", BulkAction.model_validate, body=body)

    @operation
    def bulk_replay(
        self,
        *,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | None = None,
        tag: str | None = None,
        version: str | None = None,
        created_from: datetime | str | float | None = None,
        created_to: datetime | str | float | None = None,
        since: str | float | None = None,
        all: bool = False,
        idempotency_key: str | None = None,
    ) -> Call[BulkAction]:
        """Start replaying every run matching all the filters given (at least one, or
        `all=True`), made by now: one new run each, and the new runs are never replayed by it
        again. The same `idempotency_key` again returns the same action."""
        body = _bulk_body(status, task, tag, version, created_from, created_to, since, all)
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return Call("POST", "/api/v1/runs/bulk/replay", BulkAction.model_validate, body=body)

    @operation
    def bulk_count(
        self,
        kind: str,
        *,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | None = None,
        tag: str | None = None,
        version: str | None = None,
        created_from: datetime | str | float | None = None,
        created_to: datetime | str | float | None = None,
        since: str | float | None = None,
        all: bool = False,
    ) -> Call[int]:
        """How many runs a bulk `kind` ("cancel" or "replay") with these filters would act on
        now; nothing changes."""
        body = _bulk_body(status, task, tag, version, created_from, created_to, since, all)
        body["kind"] = kind
        return Call("POST", "/api/v1/runs/bulk/count", lambda data: int(data["matched"]), body=body)

    @operation
    def bulk_action(self, action_id: str) -> Call[BulkAction]:
        """A bulk action with its progress (`total`, `done`, `skipped`, `failed`)."""
        return Call("GET", _bulk_action(action_id), BulkAction.model_validate)

    @operation
    def bulk_actions(self, limit: int = 20) -> Call[list[BulkAction]]:
        """The environment's bulk actions, newest first."""
        return Call(
            "GET",
            "/api/v1/bulk-actions",
            lambda data: _bulk_actions.validate_python(data["data"]),
            params=(("limit", str(limit)),),
        )

    @operation
    def stop_bulk_action(self, action_id: str) -> Call[BulkAction]:
        """Stop a running bulk action: runs it has not reached are left as they are."""
        return Call("POST", _bulk_action(action_id, "/cancel"), BulkAction.model_validate)

    @operation
    def wait_bulk_action(
        self, action_id: str, interval: float = 0.5, timeout: float | None = None
    ) -> Steps[BulkAction]:
        """The bulk action once it has ended (COMPLETED or CANCELED); TimeoutError after
        `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            action: BulkAction = yield Call(
                "GET", _bulk_action(action_id), BulkAction.model_validate
            )
            if action.is_final:
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"bulk action {action.id} is still running after {timeout:g}s "
                    f"({action.processed} of {action.total} runs)"
                )
            yield Sleep(interval)

    @operation
    def poll(self, run_id: str, interval: float = 0.5, timeout: float | None = None) -> Steps[Run]:
        """The run once it has ended (any final status); TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run: Run = yield _run(run_id)
            if run.status.is_final:
                return run
            if deadline is None:
                yield Sleep(interval)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"run {run.id} is still {run.status.value} after {timeout:g}s")
            yield Sleep(min(interval, remaining))

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(
        self,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_from: datetime | str | float | None = None,
        created_to: datetime | str | float | None = None,
        roots: bool = False,
    ) -> Call[RunPage]:
        """One page of runs, newest first; pass `page.next_cursor` as `cursor` for the next. With
        `roots=True`, only the runs no other run triggered (each run's `child_count` says how many
        it triggered)."""
        params: list[tuple[str, str]] = []
        if roots:
            params.append(("roots", "true"))
        if status is not None:
            statuses = [status] if isinstance(status, str) else [*status]
            params.extend(
                ("status", str(s.value if isinstance(s, RunStatus) else s)) for s in statuses
            )
        for name, value in (("task", task), ("tag", tag), ("cursor", cursor)):
            if value is not None:
                params.append((name, value))
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequest(f"limit must be a whole number from 1 to 1000, got {limit!r}")
        params.append(("limit", str(limit)))
        if created_from is not None:
            params.append(("created_from", time_param(created_from, "created_from")))
        if created_to is not None:
            params.append(("created_to", time_param(created_to, "created_to")))

        def parse(data: Any) -> RunPage:
            return RunPage([Run.model_validate(r) for r in data["data"]], data.get("next_cursor"))

        return Call("GET", "/api/v1/runs", parse, params=tuple(params))


def _queue(name: str, action: str = "") -> str:
    return f"/api/v1/queues/{segment(name, 'queue name')}{action}"


class UsageReports(Namespace[S]):
    """`client.usage`: the compute the environment used."""

    @operation
    def retrieve(
        self,
        *,
        since: datetime | str | float | None = None,
        until: datetime | str | float | None = None,
    ) -> Call[Usage]:
        """The compute seconds of the attempts that ended from `since` (default: 30 days before
        `until`) to `until` (default: now), per task and machine preset. Each is a datetime, an
        ISO string or epoch seconds."""
        params = [
            (name, time_param(value, name))
            for name, value in (("since", since), ("until", until))
            if value is not None
        ]
        return Call("GET", "/api/v1/usage", Usage.model_validate, params=tuple(params))


class Queues(Namespace[S]):
    """`client.queues`: list queues, pause and resume them, change their limit."""

    @operation
    def retrieve(self, name: str) -> Call[QueueInfo]:
        """A queue with its counts of queued and executing runs; NotFound if there is none."""
        return Call("GET", _queue(name), QueueInfo.model_validate)

    @operation
    def pause(self, name: str) -> Call[QueueInfo]:
        """No new run of the queue starts until it is resumed."""
        return Call("POST", _queue(name, "/pause"), QueueInfo.model_validate)

    @operation
    def resume(self, name: str) -> Call[QueueInfo]:
        """Runs of the queue start again."""
        return Call("POST", _queue(name, "/resume"), QueueInfo.model_validate)

    @operation
    def set_concurrency(self, name: str, limit: int | None) -> Call[QueueInfo]:
        """Override the queue's concurrency limit; None clears the override (the code's limit
        applies again)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidRequest(
                f"a concurrency limit is a whole number >= 0, or None for no limit; got {limit!r}"
            )
        body = {"concurrency_limit": limit}
        return Call("POST", _queue(name, "/concurrency"), QueueInfo.model_validate, body=body)

    @operation
    def list(self) -> Call[list[QueueInfo]]:
        """Every queue of the environment."""
        return Call("GET", "/api/v1/queues", lambda data: _queues.validate_python(data["data"]))


class IdempotencyKeys(Namespace[S]):
    """`client.idempotency_keys`: release a key so the next trigger with it makes a new run."""

    @operation
    def reset(self, task_id: str, key: str) -> Call[bool]:
        """Release `key` for `task_id`; whether a run held it (a key no run holds is no error)."""
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"an idempotency key is non-empty text, got {key!r}")
        path = f"/api/v1/tasks/{segment(task_id, 'task id')}/idempotency-keys/reset"
        return Call("POST", path, lambda data: bool(data["released"]), body={"key": str(key)})

    @operation
    def reset_batch(self, key: str) -> Call[bool]:
        """Release a batch's `key`: the next batch call with it makes a new batch. Whether a
        batch held it (a key no batch holds is no error)."""
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"an idempotency key is non-empty text, got {key!r}")
        path = "/api/v1/batches/idempotency-keys/reset"
        return Call("POST", path, lambda data: bool(data["released"]), body={"key": str(key)})


def _token(token_id: str, action: str = "") -> str:
    return f"/api/v1/waitpoints/tokens/{segment(token_id, 'token id')}{action}"


class Waitpoints(Namespace[S]):
    """Waitpoint tokens: `client.waitpoints.create_token(...)`, `.complete_token(id, data)`."""

    @operation
    def create_token(
        self,
        *,
        timeout: float | str | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> Call[Token]:
        """A token a run can wait for (`wait.for_token`) until it is completed or times out.
        The same `idempotency_key` gives the same token for `idempotency_key_ttl` (30 days by
        default)."""
        body = {
            "timeout": timeout,
            "idempotency_key": idempotency_key,
            "tags": tags,
            "idempotency_key_ttl": idempotency_key_ttl,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return Call("POST", "/api/v1/waitpoints/tokens", Token.model_validate, body=body)

    @operation
    def complete_token(self, token_id: str, data: Any = None) -> Call[Token]:
        """Complete a token; every run waiting on it resumes with `data` as the output."""
        body = {"data": to_json_value(data, "data")}
        return Call("POST", _token(token_id, "/complete"), Token.model_validate, body=body)

    @operation
    def retrieve_token(self, token_id: str) -> Call[Token]:
        """A token with its status, and its output once completed."""
        return Call("GET", _token(token_id), Token.model_validate)

    @operation
    def list_tokens(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Call[Page[Token]]:
        """One page of tokens, newest first; pass `page.next_cursor` as `cursor` for the next."""
        params = [("limit", str(limit))]
        if status:
            params.append(("status", status))
        if cursor:
            params.append(("cursor", cursor))

        def parse(data: Any) -> Page[Token]:
            return Page([Token.model_validate(t) for t in data["data"]], data.get("next_cursor"))

        return Call("GET", "/api/v1/waitpoints/tokens", parse, params=tuple(params))
