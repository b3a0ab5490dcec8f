"""The worker protocol over HTTP, for `conveyor worker` on other machines.

The same messages as the in-process link (conveyor/protocol.py): register, lease (a long poll:
it answers as soon as runs may start, or after `wait` seconds with nothing), heartbeat,
complete, hooks, logs, the durable calls of runs, suspend, stop. A worker authenticates with
its environment's key and only ever touches runs of that environment.
"""

from __future__ import annotations

import asyncio
import functools
import math
import operator
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_type_hints

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    field_validator,
)

from conveyor.errors import AuthenticationError, ConveyorError
from conveyor.models import TaskDefinition, WireModel
from conveyor.protocol import (
    AttemptOutcome,
    DurableCall,
    Heartbeat,
    HeartbeatReply,
    LeaseReply,
    LogEntry,
    MetadataOp,
)
from conveyor.server.auth import EngineDep, EnvironmentDep, request_key
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import ERROR_RESPONSES, ErrorDetail, ErrorResponse


def registered_worker(worker_id: str, env: EnvironmentDep, engine: EngineDep) -> None:
    """Every route but register acts only for a worker of the key's own environment."""
    engine.workers.check(env.id, worker_id)


router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/workers/{worker_id}",
    tags=["workers"],
    responses=ERROR_RESPONSES,
)
WorkerDep = Depends(registered_worker)

MAX_WAIT = 30.0
_lease_reply = TypeAdapter(LeaseReply)


class _Body(WireModel):
    model_config = ConfigDict(extra="forbid")


def _json_numbers_in(items: Any, kind: type, *names: str) -> Any:
    """The protocol's messages inside a body (outcomes, log entries) are dataclasses, which
    pydantic fills leniently: their number fields take JSON numbers only too."""
    if isinstance(items, list):
        for item in items:
            for name in names:
                if isinstance(item, dict) and isinstance(item.get(name), bool | str):
                    raise ValueError(
                        f"{kind.__name__}.{name} must be a number, not {type(item[name]).__name__}"
                    )
                value = item.get(name) if isinstance(item, dict) else None
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{kind.__name__}.{name} must be a finite number")
    return items


# counts and fences: far below what BIGINT holds, and exact in any JSON parser (2**53)
def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


# a JSON integer (1.0 is one too), never `false` for 0 as pydantic would take it
Count = Annotated[int, Field(ge=0, le=2**53), BeforeValidator(_not_bool)]
HookName = Literal["on_start", "on_success", "on_failure", "on_cancel"]


class RegisterBody(_Body):
    name: str = Field("worker", max_length=200)
    tasks: list[TaskDefinition] | None = None  # None: the worker has not loaded its code yet
    deployed: bool = (
        False  # it runs the environment's deployed versions (`conveyor worker --env prod`)
    )


class Registered(BaseModel):
    environment: str
    project: str
    heartbeat_interval: float
    # a worker none of whose heartbeats were acknowledged for this long stops its attempts itself
    worker_timeout: float = 30.0
    slug: str = ""  # the environment's slug (preview-<branch> for a preview)
    env_id: str = ""
    current_version: str | None = None


class TasksBody(_Body):
    tasks: list[TaskDefinition]


class LeaseBody(_Body):
    capacity: int = Field(ge=0, le=10_000)
    wait: float = Field(0, ge=0, le=MAX_WAIT)


class HeartbeatBody(_Body):
    running: list[tuple[str, Count]] = Field(
        max_length=10_000
    )  # (run id, fence) of each attempt it holds
    lease_seq: Count = 0  # the highest lease count it has received


class HeartbeatAnswer(BaseModel):
    stop: list[str]  # runs among `running` to stop: canceled, or taken back
    revoked_through: int = 0  # leases up to this count were revoked: start nothing of them


class CompleteBody(_Body):
    outcomes: list[AttemptOutcome] = Field(max_length=10_000)

    @field_validator("outcomes", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _json_numbers_in(value, AttemptOutcome, "attempt", "fence", "retry_at")


class HooksBody(_Body):
    done: list[tuple[str, HookName, Count]] = Field(
        max_length=10_000
    )  # (run id, hook, fence of the hook job)


class LogsBody(_Body):
    entries: list[LogEntry] = Field(max_length=100_000)

    @field_validator("entries", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _json_numbers_in(value, LogEntry, "attempt", "seq", "ts", "fence")


class _CallBody(_Body):
    """A durable call of a run: which call (`op`) and its `args` (conveyor/protocol.py)."""

    run_id: str
    fence: Count  # of the attempt making the call: only the attempt holding the run may
    args: DurableCall

    @field_validator("args", mode="before")
    @classmethod
    def _op_outside(cls, value: Any) -> Any:
        # the call's op is the body's; `args` holds the rest of it
        if isinstance(value, dict) and "op" in value:
            raise ValueError("`op` goes next to `args`, not inside it")
        return value


def _call_body(call: type[Any]) -> type[_CallBody]:
    """The body of one kind of durable call: its `op`, and the message itself as `args`."""
    op = get_type_hints(call)["op"]  # Literal["journal"], ...
    body: type[_CallBody] = create_model(
        f"{call.__name__}Body", __base__=_CallBody, __doc__=call.__doc__, op=op, args=call
    )
    return body


# one body per kind of durable call, told apart by `op`; validated as strictly as the protocol's
# types (conveyor/protocol.py), so a call the worker could not have meant is a 422 naming it.
# Made from the calls themselves: a new kind of call needs nothing here.
if TYPE_CHECKING:
    CallBody = _CallBody
else:
    CallBody = Annotated[
        functools.reduce(operator.or_, map(_call_body, get_args(get_args(DurableCall)[0]))),
        Field(discriminator="op"),
    ]


class CallResult(BaseModel):
    result: Any = None


class FlushBody(_Body):
    """The metadata ops one run's code made since its last flush (see MetadataCall)."""

    run_id: str
    fence: Count  # of the attempt making the ops: only the attempt holding the run may
    ops: list[MetadataOp]  # the whole body is bounded by the server's request size


class MetadataBody(_Body):
    flushes: list[FlushBody] = Field(min_length=1, max_length=1_000)


class FlushAnswer(BaseModel):
    result: dict[str, Any] | None = None  # {"applied": seq, "refused": [...]}
    error: ErrorDetail | None = None  # why nothing of the flush was applied


class MetadataAnswer(BaseModel):
    answers: list[FlushAnswer]  # one per flush, in order


class SuspendBody(_Body):
    run_id: str
    attempt: Count
    fence: Count
    waitpoints: list[str] = Field(min_length=1, max_length=10_000)
    compute_used: float = Field(ge=0)


class SuspendReply(BaseModel):
    """`suspended`: the run now waits (WAITING, no slot). Otherwise `gone` when the worker no
    longer holds the attempt, or `results` of the waitpoints, which had all completed meanwhile."""

    suspended: bool
    gone: bool = False
    results: dict[str, Any] | None = None


class Ok(BaseModel):
    ok: bool = True


class Stored(BaseModel):
    stored: int  # lines stored; the others were of stale attempts or could not be stored


@router.post(
    "/register",
    response_model=Registered,
    summary="A worker starts",
    responses={
        409: {"model": ErrorResponse, "description": "The worker id belongs to another environment"}
    },
)
def register(
    worker_id: str, body: RegisterBody, env: EnvironmentDep, engine: EngineDep
) -> Registered:
    """Register the worker and the tasks its code defines. Runs a worker of the same id held
    before it restarted are given back."""
    engine.workers.register(env.id, worker_id, body.name, body.tasks, deployed=body.deployed)
    current = engine.deployments.current_version(env.id)
    # three heartbeats fit in the timeout after which the server takes a silent worker's runs back
    return Registered(
        environment=env.kind,
        project=env.project,
        heartbeat_interval=engine.workers.timeout / 3,
        worker_timeout=engine.workers.timeout,
        slug=env.slug,
        env_id=env.id,
        current_version=current,
    )


@router.post(
    "/tasks", dependencies=[WorkerDep], response_model=Ok, summary="The worker's code changed"
)
def set_tasks(worker_id: str, body: TasksBody, env: EnvironmentDep, engine: EngineDep) -> Ok:
    engine.workers.set_tasks(env.id, body.tasks)
    return Ok()


# response_model documents the answer; the route sends it already encoded (a lease is on the
# path from trigger to start, and validating what the engine built would only cost time)
@router.post(
    "/lease",
    dependencies=[WorkerDep],
    response_model=LeaseReply,
    summary="Take runs to start (long poll)",
)
async def lease(
    worker_id: str, body: LeaseBody, env: EnvironmentDep, engine: EngineDep, request: Request
) -> Response:
    """Attempts to start and hooks to run, within every concurrency limit. With `wait`, answers
    as soon as there is something, or after `wait` seconds with nothing."""
    wakeups = request.app.state.wakeups
    arrived = time.monotonic()
    deadline = arrived + body.wait
    key = request_key(request)

    def lease_if_live() -> LeaseReply | None:
        # the key is checked in the same thread hop as the lease: a key revoked or rotated
        # before this (while the poll waited, or while the request queued for a thread)
        # hands out nothing more
        known, still = engine.environments.cached(key)
        if not known:
            still = engine.environments.authenticate(key)
        if still is None or still.id != env.id:
            return None
        return engine.workers.lease(env.id, worker_id, body.capacity)

    # registered before the first read: a run made startable after any read wakes the next wait
    with wakeups.listen(env.id) as waiter:
        while True:
            reply = await run_in_threadpool(lease_if_live)
            if reply is None:
                raise AuthenticationError(
                    "the API key was revoked or rotated while this lease waited; "
                    "use the environment's new key"
                )
            remaining = deadline - time.monotonic()
            if (
                reply.attempts
                or reply.hooks
                or remaining <= 0
                or body.capacity == 0
                or wakeups.closed
            ):
                reply.held = time.monotonic() - arrived
                return Response(_lease_reply.dump_json(reply), media_type="application/json")
            if await request.is_disconnected():  # the worker went away: take nothing for it
                return Response(_lease_reply.dump_json(reply), media_type="application/json")
            if reply.next_due is not None:
                remaining = min(remaining, max(0.0, reply.next_due - time.time()) + 0.001)
            await waiter.wait(remaining)


# Heartbeats have threads of their own: when hundreds of durable calls fill the shared
# threadpool, a heartbeat queued behind them would make a live worker look lost.
_HEARTBEATS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="conveyor-heartbeat")


@router.post("/heartbeat", response_model=HeartbeatAnswer, summary="The worker is alive")
async def heartbeat(
    worker_id: str, body: HeartbeatBody, env: EnvironmentDep, engine: EngineDep
) -> HeartbeatAnswer:
    """Returns the runs among `running` the worker must stop (canceled, or taken back)."""

    def beat() -> HeartbeatReply:
        registered_worker(worker_id, env, engine)
        return engine.workers.heartbeat(
            worker_id, Heartbeat(running=body.running, lease_seq=body.lease_seq)
        )

    reply = await asyncio.get_running_loop().run_in_executor(_HEARTBEATS, beat)
    return HeartbeatAnswer(stop=reply.stop, revoked_through=reply.revoked_through)


@router.post("/complete", dependencies=[WorkerDep], response_model=Ok, summary="Attempts ended")
def complete(worker_id: str, body: CompleteBody, env: EnvironmentDep, engine: EngineDep) -> Ok:
    engine.workers.complete(worker_id, body.outcomes, env_id=env.id)
    return Ok()


@router.post("/hooks", dependencies=[WorkerDep], response_model=Ok, summary="Lifecycle hooks ran")
def hooks_done(worker_id: str, body: HooksBody, env: EnvironmentDep, engine: EngineDep) -> Ok:
    for run_id, hook, fence in body.done:
        engine.workers.hook_done(run_id, hook, fence, env_id=env.id)
    return Ok()


@router.post(
    "/logs", dependencies=[WorkerDep], response_model=Stored, summary="Log lines of attempts"
)
def logs(worker_id: str, body: LogsBody, env: EnvironmentDep, engine: EngineDep) -> Stored:
    """Lines of stale attempts (canceled, taken back) are dropped, not refused."""
    return Stored(stored=engine.workers.append_logs(body.entries, env_id=env.id))


@router.post(
    "/calls",
    dependencies=[WorkerDep],
    response_model=CallResult,
    summary="A durable call made by a run",
)
def call(worker_id: str, body: CallBody, env: EnvironmentDep, engine: EngineDep) -> CallResult:
    return CallResult(
        result=engine.durable.call(
            env.id, body.run_id, body.args, worker_id=worker_id, fence=body.fence
        )
    )


@router.post(
    "/metadata",
    dependencies=[WorkerDep],
    response_model=MetadataAnswer,
    summary="Metadata flushes of many runs",
)
def metadata(
    worker_id: str, body: MetadataBody, env: EnvironmentDep, engine: EngineDep
) -> MetadataAnswer:
    """Applied in one transaction; each flush is answered on its own (a stale attempt's, or one
    of a run of another environment, is refused alone)."""
    answers = engine.durable.metadata(
        env.id, worker_id, [(f.run_id, f.fence, f.ops) for f in body.flushes]
    )
    return MetadataAnswer(
        answers=[
            FlushAnswer(error=ErrorDetail(**a.to_dict()))
            if isinstance(a, ConveyorError)
            else FlushAnswer(result=a)
            for a in answers
        ]
    )


@router.post(
    "/suspend",
    dependencies=[WorkerDep],
    response_model=SuspendReply,
    summary="Suspend a run on waitpoints",
)
def suspend(
    worker_id: str, body: SuspendBody, env: EnvironmentDep, engine: EngineDep
) -> SuspendReply:
    engine.runs.get(env.id, body.run_id)  # NotFound outside the key's environment
    return SuspendReply.model_validate(
        engine.durable.suspend(
            worker_id, body.run_id, body.attempt, body.waitpoints, body.compute_used, body.fence
        )
    )


@router.post("/stop", dependencies=[WorkerDep], response_model=Ok, summary="The worker shuts down")
def stop(worker_id: str, env: EnvironmentDep, engine: EngineDep) -> Ok:
    """Runs it still held are retried elsewhere."""
    engine.workers.stopped(worker_id)
    return Ok()
