"""The worker protocol: what a worker's supervisor and the engine say to each other.

    lease(capacity)           -> LeaseReply(attempts to start, hooks to run, when to ask again)
    heartbeat(Heartbeat)      -> HeartbeatReply(ids the worker must stop: canceled, or taken back)
    complete([AttemptOutcome])
    hook_done(run_id, hook, fence)
    append_logs([LogEntry])

Fencing: every attempt (and hook job) carries its run's `fence`, a number the engine raises
each time it hands the run to a worker or takes it away. Everything a worker reports for an
attempt carries that fence, and the engine accepts it only while it is still the run's fence,
so a stale attempt (canceled, or taken back from a worker that went silent) changes nothing.
A worker stops its attempts itself once no heartbeat has been acknowledged for the worker
timeout; the engine takes a silent worker's runs back only after a longer span (see
`take_back_after` in engine/workers.py), so two attempts of one run never execute at once.

In `conveyor dev` the supervisor calls the engine in-process; a remote worker sends the same
messages over HTTP. Payloads and outputs travel as JSON text, parsed only where they are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
    resumed: bool = False  # this continues an attempt that was suspended
    journal: list[JournalEntry] = field(default_factory=list)
    # the deployed version whose code runs it (None: the worker's own code)
    version: str | None = None
    fence: int = 0  # the run's fence when it was handed out: what the attempt reports carries it


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
