"""The worker protocol: what a worker's supervisor and the engine say to each other.

    lease(capacity)           -> LeaseReply(attempts to start, hooks to run, when to ask again)
    heartbeat(Heartbeat)      -> HeartbeatReply(ids the worker must stop: canceled, or taken back)
    complete([AttemptOutcome])
    hook_done(run_id, hook, fence)
    append_logs([LogEntry])
    call(run_id, fence, DurableCall) -> the call's answer (journaled with its effect)
    suspend(run_id, attempt, fence, waitpoints, compute_used)

Fencing: every attempt (and hook job) carries its run's `fence`, a number the engine raises
each time it hands the run to a worker or takes it away. Everything a worker reports for an
attempt carries that fence, and the engine accepts it only while it is still the run's fence,
so a stale attempt (canceled, or taken back from a worker that went silent) changes nothing.
A worker stops its attempts itself once no heartbeat has been acknowledged for the worker
timeout; the engine takes a silent worker's runs back only after a longer span (see
`take_back_after` in engine/workers.py), so two attempts of one run never execute at once.

In `conveyor dev` the supervisor calls the engine in-process; a remote worker sends the same
messages over HTTP. Payloads and outputs travel as JSON text, parsed only where they are used.

A durable call is one message per kind (`JournalCall`, `TriggerCall`, ...), told apart by its
`op`. Task code builds them in the executor's process, so the engine's side checks each one
(`check_call` in-process, the same types validated by the HTTP route): a call a worker could
not have meant is refused naming the field, never a crash in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError, with_config
from pydantic.json_schema import SkipJsonSchema

from conveyor.errors import InvalidRequest

OutcomeKind = Literal[
    "completed",  # returned normally
    "failed",  # raised; retried per policy
    "aborted",  # raised AbortTaskRunError; not retried
    "payload_invalid",  # failed its schema before the attempt; not retried
    "timed_out",  # exceeded max_duration; not retried
    "crashed",  # its process died or its worker was lost; retried per policy
    # stopped by the platform for another reason (a neighbour's timeout, a shutdown); retried at
    # once, and it does not use up one of the run's attempts
    "interrupted",
    "system_failure",  # Conveyor could not run it; not retried
]


@dataclass(slots=True)
class AttemptSpec:
    """An attempt the engine hands to a worker."""

    run_id: str
    task_id: str
    attempt: int
    payload_json: str
    max_attempts: int
    max_duration: float | None
    machine: str
    tags: list[str]
    metadata: dict[str, Any]
    queue: str
    concurrency_key: str | None
    environment: str
    run_on_start: bool
    parent_id: str | None = None
    root_id: str | None = None
    batch_id: str | None = None
    created_at: float = 0.0
    started_at: float = 0.0
    compute_used: float = 0.0  # seconds this attempt already ran before it was suspended
    compute_seconds: float = 0.0  # the run's compute seconds of its ended attempts (usage)
    resumed: bool = False  # this continues an attempt that was suspended
    journal: list[JournalEntry] = field(default_factory=list)
    # the deployed version whose code runs it (None: the worker's own code)
    version: str | None = None
    fence: int = 0  # the run's fence when it was handed out: what the attempt reports carries it
    # the highest metadata op of the run's code applied so far: a replay makes those again and
    # must neither send nor apply them twice (see MetadataCall)
    metadata_seq: int = 0
    # its queue has a rate limit, which counted this start when the lease was made: a worker
    # gives the attempt back rather than start it seconds later (a late lease answer)
    rate_limited: bool = False
    # the environment's variables (engine/envvars.py), decrypted: the executor sets them in its
    # process's environment before the attempt starts; kept out of repr so no log shows them
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # when this attempt first started (it may go on after suspensions): its span starts then
    attempt_started_at: float = 0.0
    # the W3C trace context the run continues (`traceparent`, `tracestate`), if it was triggered
    # inside a span: the attempt's OpenTelemetry spans join that trace (conveyor/telemetry.py)
    trace_context: dict[str, str] | None = None


@dataclass(slots=True)
class JournalEntry:
    """A durable call the run already made: its answer, or the waitpoint that will hold it."""

    key: str
    value_json: str | None = None
    waitpoint_id: str | None = None
    waitpoint_status: str | None = None  # PENDING, COMPLETED, TIMED_OUT
    waitpoint_result_json: str | None = None
    waitpoint_kind: str | None = None
    complete_at: float | None = None
    attempt: int | None = None  # of a trigger the run waits for: the attempt that made it
    # the run was suspended on this waitpoint and resumed once it completed (its on_resume hooks
    # have yet to run)
    suspended_on: bool = False


@dataclass(slots=True)
class HookJob:
    """A lifecycle hook the engine asks a worker to run for a run that has ended."""

    run_id: str
    task_id: str
    hook: Literal["on_success", "on_failure", "on_cancel"]
    status: str
    payload_json: str
    output_json: str | None
    error: dict[str, Any] | None
    attempt: int
    tags: list[str]
    metadata: dict[str, Any]
    machine: str
    environment: str
    version: str | None = None
    fence: int = 0
    env: dict[str, str] = field(default_factory=dict, repr=False)  # as AttemptSpec's


@dataclass(slots=True)
class LeaseReply:
    attempts: list[AttemptSpec] = field(default_factory=list)
    hooks: list[HookJob] = field(default_factory=list)
    next_due: float | None = None  # the earliest time a queued run becomes startable
    current_version: str | None = None  # the environment's current deployed version, to warm up
    # the worker's lease count after this lease: the worker tells it back in its heartbeats
    lease_seq: int = 0
    # seconds the server held the request (a long poll) before it answered: the rest of the
    # round trip the worker measures is the network's, and an answer that spent long on the way
    # is not started (a cancel may have landed meanwhile; see decisions.LATE_LEASE)
    held: float = 0.0


@dataclass(slots=True)
class Heartbeat:
    """A worker is alive. `running`: (run id, fence) of every attempt it holds, running or
    ended but not reported yet; `lease_seq`: the highest lease count it has received, so the
    engine knows which runs it handed out the worker must know about."""

    running: list[tuple[str, int]] = field(default_factory=list)
    lease_seq: int = 0


@dataclass(slots=True)
class HeartbeatReply:
    """`stop`: runs among those listed the worker must stop (canceled, or taken back).
    `revoked_through`: leases up to this count were revoked when the worker was declared
    lost; a lease answer up to it that arrives now must start nothing."""

    stop: list[str] = field(default_factory=list)
    revoked_through: int = 0


@dataclass(slots=True)
class AttemptOutcome:
    """How an attempt ended, as the worker saw it."""

    run_id: str
    attempt: int
    kind: OutcomeKind
    output_json: str | None = None
    error: dict[str, Any] | None = None
    # the attempt's (AttemptSpec.fence); 0 only for outcomes the engine makes itself
    fence: int = 0
    # a failure the task's catch_error wants retried at this epoch time, not the policy's
    retry_at: float | None = None


@dataclass(slots=True)
class LogEntry:
    run_id: str
    attempt: int
    seq: int
    ts: float
    level: str
    message: str
    attributes: dict[str, Any] | None = None
    fence: int = 0  # of the attempt or hook job that wrote it


# -- durable calls ---------------------------------------------------------------------------

# JSON types only, as the wire has them: no `true` for a number, no 0 for a boolean, no "5"
Text = Annotated[str, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
# every call refuses a field it does not know; a call object given in-process is checked field
# by field like one parsed from JSON (it comes from the executor, where task code runs)
_CALL = ConfigDict(extra="forbid", revalidate_instances="always")


class TriggerItem(NamedTuple):
    """One child to trigger; `[task_id, payload, options]` on the wire. `options` are checked
    as TriggerOptions by the engine."""

    task_id: Text
    payload: Any
    options: dict[str, Any]


# `op` names the kind of call. On the wire it is the body's `op` next to the call's `args`, so
# the field is left out of the schema of `args` (see conveyor/server/api/workers.py).


@with_config(_CALL)
@dataclass(slots=True)
class JournalCall:
    """Journal the answer of a call that needs no waiting: a step's result, `step.now`,
    `step.uuid`. The journal's answer is returned (an earlier one wins)."""

    key: Text
    value: Any
    started_at: Number | None = None  # when a step began, on the worker's clock (its span)
    op: SkipJsonSchema[Literal["journal"]] = "journal"


@with_config(_CALL)
@dataclass(slots=True)
class TriggerCall:
    """Trigger children of the run as one call; with `wait`, also the waitpoint the run waits
    on (its one child, or the whole batch). With `again`, a retry triggers again the children
    of the journaled call that failed."""

    key: Text
    items: list[TriggerItem]
    wait: Flag
    batch: Flag
    # a retry of the run: the children this call triggered in an earlier attempt failed, and
    # those are triggered again (the engine checks it); the others are kept
    again: Flag = False
    # a batch's own idempotency key (scoped by the SDK) and the seconds it holds (default 30 days)
    idempotency_key: Text | None = None
    idempotency_key_ttl: Number | None = None
    op: SkipJsonSchema[Literal["durable_trigger"]] = "durable_trigger"


@with_config(_CALL)
@dataclass(slots=True)
class WaitUntilCall:
    """A duration wait: until the epoch time `until`, or, given `seconds` (`wait.for_`), that
    long from now on the engine's clock."""

    key: Text
    until: Number
    seconds: Number | None = None
    op: SkipJsonSchema[Literal["wait_until"]] = "wait_until"


@with_config(_CALL)
@dataclass(slots=True)
class CreateTokenCall:
    """Create a token (a waitpoint something outside completes) once per run."""

    key: Text
    timeout: Number | None = None  # seconds
    idempotency_key: Text | None = None
    tags: list[Text] | None = None
    idempotency_key_ttl: Number | None = None  # seconds the key holds (default 30 days)
    op: SkipJsonSchema[Literal["create_token"]] = "create_token"


@with_config(_CALL)
@dataclass(slots=True)
class WaitTokenCall:
    """Wait for a token: journal that the run waits on it."""

    key: Text
    token_id: Text
    op: SkipJsonSchema[Literal["wait_token"]] = "wait_token"


@with_config(_CALL)
@dataclass(slots=True)
class CompleteTokenCall:
    """Complete a token with JSON `data`, once per run."""

    key: Text
    token_id: Text
    data: Any
    op: SkipJsonSchema[Literal["complete_token"]] = "complete_token"


MetadataTarget = Literal["self", "parent", "root"]
MetadataOpKind = Literal["set", "increment", "decrement", "append", "remove", "delete", "tag"]


class MetadataOp(NamedTuple):
    """One change to run metadata, `[seq, target, op, key, value]` on the wire. `seq` numbers
    the ops of the run's code in the order it makes them (from 1 in each execution); `tag` adds
    the tag `value` to the run."""

    seq: Annotated[int, Strict()]
    target: MetadataTarget
    op: MetadataOpKind
    key: Text
    value: Any = None


@with_config(_CALL)
@dataclass(slots=True)
class MetadataCall:
    """Apply metadata ops of the run's code, in order; ops the run applied before (a replay)
    are skipped by their `seq`. Not journaled: the seq is the guard."""

    ops: list[MetadataOp]
    op: SkipJsonSchema[Literal["metadata"]] = "metadata"


@with_config(_CALL)
@dataclass(slots=True)
class StreamCall:
    """Chunks of a stream the run writes (`streams.pipe`), the first of them numbered `start`
    (from 0); with `done`, the stream ends after them. Chunks already stored are skipped by
    number, so a chunk sent again is stored once."""

    name: Text
    start: Annotated[int, Strict()]
    chunks: list[Any]
    done: Flag = False
    op: SkipJsonSchema[Literal["stream"]] = "stream"


DurableCall = Annotated[
    JournalCall
    | TriggerCall
    | WaitUntilCall
    | CreateTokenCall
    | WaitTokenCall
    | CompleteTokenCall
    | MetadataCall
    | StreamCall,
    Field(discriminator="op"),
]


def call_args(call: DurableCall) -> dict[str, Any]:
    """A call's `args` on the wire: its fields but `op` (a trigger item goes as a list). A
    trigger's `again` goes only when set, so a server from before it understands the rest."""
    args = {f.name: getattr(call, f.name) for f in fields(call) if f.name != "op"}
    if args.get("again") is False:
        del args["again"]
    return args


@cache
def _calls() -> TypeAdapter[DurableCall]:
    return TypeAdapter(DurableCall)


def check_call(call: object) -> DurableCall:
    """`call` as a DurableCall whose every field has its type, or InvalidRequest naming what is
    wrong (for a call given in-process; the HTTP route validates the same types itself)."""
    try:
        return _calls().validate_python(call)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()[:5]]
        raise InvalidRequest(f"invalid durable call: {'; '.join(problems)}") from None


def _problem(error: Any) -> str:
    """One validation error as `wait_until.until: Input should be a valid number` (the call's
    op, then the field, as the HTTP API names fields)."""
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    extra = error["type"] in ("unexpected_keyword_argument", "extra_forbidden")
    message = "unknown field" if extra else error["msg"]
    return f"{where}: {message}" if where else message
