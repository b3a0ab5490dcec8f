"""The supervisor's decisions, apart from its I/O: how many runs to lease and when to ask again,
whether a lease may start its attempts, when an attempt is past its deadline or an executor over
its machine's memory or stalled (an attempt holds its event loop), how soon a crashed executor
starts again, and what an attempt that was in an executor when it exited, or was handed back
unstarted, is reported as. Pure functions of what the supervisor knows, so each is tested on its
own (tests/unit/test_supervisor_decisions.py).
"""

from __future__ import annotations

from conveyor.models import MACHINES
from conveyor.protocol import AttemptOutcome

KILL_GRACE = 1.0  # seconds past max_duration before a stuck executor is killed
IDLE_POLL = 1.0  # seconds the lease loop waits when nothing wakes it
RESTART_WINDOW = 10.0  # seconds over which executor restarts are counted
RESTARTS_BEFORE_BACKOFF = 5  # restarts within the window before each waits RESTART_BACKOFF
RESTART_BACKOFF = 2.0


def free_slots(capacity: int, inflight: int) -> int:
    """How many more attempts the worker can take (negative when it holds more than its capacity,
    e.g. after a capacity change)."""
    return capacity - inflight


def lease_size(free: int) -> int:
    """How many runs to ask the engine for."""
    return max(free, 0)


def lease_again_at_once(leased: int, free: int) -> bool:
    """Whether to lease again without waiting: the lease filled every free slot, so more runs may
    be waiting (capacity decides when they start)."""
    return leased > 0 and leased >= free


def poll_timeout(next_due: float | None, now: float) -> float:
    """How long the lease loop sleeps unless woken: until the earliest queued run becomes
    startable (`next_due`, wall-clock seconds), at most IDLE_POLL."""
    if next_due is None:
        return IDLE_POLL
    return min(IDLE_POLL, max(0.0, next_due - now) + 0.001)


def in_contact(acked_at: float, now: float, worker_timeout: float) -> bool:
    """Whether a heartbeat was acknowledged within the worker timeout (monotonic seconds)."""
    return now - acked_at < worker_timeout


def lease_accepted(contact: bool, lease_seq: int, revoked_through: int) -> bool:
    """Whether the attempts of a lease may start: only while in contact with the server, and only
    when the lease is newer than every lease the engine revoked (a reply that arrived late)."""
    return contact and lease_seq > revoked_through


# A lease answer that spent longer than this on the network (its round trip less the time the
# server held the long poll) is checked with a heartbeat before its attempts start: the network
# was broken or slow, and the runs may have been canceled while the answer was on its way.
LATE_LEASE = 1.0


def lease_late(in_transit: float) -> bool:
    """Whether a lease answer spent long enough on the network to be checked before starting."""
    return in_transit > LATE_LEASE


def attempt_deadline(
    started: float, max_duration: float | None, compute_used: float
) -> float | None:
    """When an attempt started at `started` (monotonic) reaches its max_duration, counting the
    compute it used before it was suspended; None when it has no limit."""
    return started + max_duration - compute_used if max_duration else None


def past_deadline(deadline: float | None, now: float) -> bool:
    """Whether an attempt overran its deadline by more than KILL_GRACE: its executor is killed
    (a CPU-bound body blocks the executor's event loop, so it cannot stop itself)."""
    return deadline is not None and now > deadline + KILL_GRACE


def memory_kill_reason(machine: str, rss_bytes: int) -> str | None:
    """Why an executor of `machine` using `rss_bytes` must be killed, or None when it is within
    its machine's memory (or the machine is unknown)."""
    limit = MACHINES.get(machine, (0, 0))[1] * 1024**3
    if limit and rss_bytes > limit:
        return (
            f"out_of_memory:{rss_bytes / 1024**2:.0f} MB used, machine {machine} has "
            f"{limit / 1024**2:.0f} MB"
        )
    return None


def stall_kill_reason(run_id: str | None, deadline: float | None, now: float) -> str | None:
    """Why an executor whose event loop an attempt (`run_id`; None: code outside any attempt,
    a hook) has held past `stall_timeout` is killed, or None to leave it to the max_duration
    kill: that attempt is past its deadline, and ends timed out."""
    if deadline is not None and now > deadline:
        return None
    return f"stalled:{run_id or ''}"


def restart_delay(restarts: list[float], now: float) -> tuple[list[float], float]:
    """The restarts to remember (those of the last RESTART_WINDOW seconds, and this one) and how
    long to wait before starting a crashed executor again: at once, unless it crash-loops."""
    recent = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
    return recent, 0.0 if len(recent) < RESTARTS_BEFORE_BACKOFF else RESTART_BACKOFF


def interrupted(run_id: str, attempt: int, message: str) -> AttemptOutcome:
    """An attempt stopped for a reason not its own (`message` says which): the engine runs it
    again, and it keeps its retries."""
    return AttemptOutcome(
        run_id,
        attempt,
        "interrupted",
        error={"name": "Interrupted", "code": "interrupted", "message": message},
    )


def exit_outcome(
    run_id: str,
    attempt: int,
    max_duration: float | None,
    reason: str | None,
    code: int | None,
    stack: str | None = None,
) -> AttemptOutcome:
    """What an attempt that was running in an executor when it exited is reported as, from why
    the supervisor killed it (`reason`, None when it did not) and its exit code.

    Its own deadline: timed out. It held the event loop: failed (retried per policy), with
    `stack`, where it held it. Another attempt's deadline or stall, or lost contact: interrupted
    (it runs again and keeps its retries). Memory, or any other exit: crashed (retried per
    policy).
    """
    if reason == f"stalled:{run_id}":
        return AttemptOutcome(
            run_id,
            attempt,
            "failed",
            error={
                "name": "EventLoopBlocked",
                "code": "stalled",
                "message": "The attempt blocked its executor's event loop for longer than "
                "stall_timeout, stalling the other attempts of the process, which was replaced. "
                "In an async def, await asyncio.sleep and asyncio.to_thread(...) instead of "
                "blocking calls, or make the task a plain def.",
                "stack": stack,
            },
        )
    if reason and reason.startswith("stalled:"):
        return interrupted(
            run_id,
            attempt,
            "Other code in the same executor blocked its event loop past stall_timeout "
            "and the executor was replaced; this attempt runs again and keeps its retries.",
        )
    if reason == f"timed_out:{run_id}":
        return AttemptOutcome(
            run_id,
            attempt,
            "timed_out",
            error={
                "name": "MaxDurationExceeded",
                "code": "timed_out",
                "message": f"The attempt ran longer than its max_duration of {max_duration:g}s "
                "and its process was stopped.",
            },
        )
    if reason and reason.startswith("timed_out:"):
        return interrupted(
            run_id,
            attempt,
            "Another attempt in the same executor overran its max_duration and the "
            "executor was stopped; this attempt runs again and keeps its retries.",
        )
    if reason == "lost_contact":
        return interrupted(
            run_id,
            attempt,
            "The worker lost contact with the server for longer than the worker timeout "
            "and stopped this attempt so that it can run elsewhere; it runs again and "
            "keeps its retries.",
        )
    if reason and reason.startswith("out_of_memory"):
        return AttemptOutcome(
            run_id,
            attempt,
            "crashed",
            error={
                "name": "OutOfMemory",
                "code": "out_of_memory",
                "message": f"The executor ran out of memory: {reason.split(':', 1)[1]}.",
            },
        )
    how = (
        f"was killed by signal {-code}"
        if code is not None and code < 0
        else f"exited with code {code}"
    )
    cause = f" ({reason})" if reason else ""
    return AttemptOutcome(
        run_id,
        attempt,
        "crashed",
        error={
            "name": "ExecutorCrashed",
            "code": "crashed",
            "message": f"The process running this attempt {how}{cause}.",
        },
    )
