"""The supervisor's decisions (conveyor/worker/decisions.py): how many runs it leases and when it
asks again, whether a lease may start, when it kills an executor for a deadline or for memory,
how soon a crashed executor starts again, and what attempts it reports when an executor exits."""

from __future__ import annotations

import pytest

from conveyor.worker.decisions import (
    IDLE_POLL,
    KILL_GRACE,
    LATE_LEASE,
    RESTART_BACKOFF,
    attempt_deadline,
    exit_outcome,
    free_slots,
    in_contact,
    lease_accepted,
    lease_again_at_once,
    lease_late,
    lease_size,
    memory_kill_reason,
    past_deadline,
    poll_timeout,
    restart_delay,
)

MB = 1024**2


# -- what to lease ----------------------------------------------------------------------------


def test_a_worker_leases_what_its_capacity_leaves_free() -> None:
    assert lease_size(free_slots(capacity=200, inflight=0)) == 200
    assert lease_size(free_slots(capacity=200, inflight=195)) == 5
    assert lease_size(free_slots(capacity=200, inflight=200)) == 0
    # more in flight than the capacity (it was lowered): asks for none, never a negative count
    assert lease_size(free_slots(capacity=10, inflight=12)) == 0


def test_a_lease_that_filled_every_slot_is_followed_by_another_at_once() -> None:
    assert lease_again_at_once(leased=5, free=5)  # more may be waiting
    assert not lease_again_at_once(leased=4, free=5)  # the queue gave what it had
    assert not lease_again_at_once(leased=0, free=0)  # full: freed capacity wakes the loop


def test_the_lease_loop_sleeps_until_the_next_run_is_due_at_most_a_poll() -> None:
    now = 1_000_000.0
    assert poll_timeout(None, now) == IDLE_POLL
    assert poll_timeout(now + 0.25, now) == pytest.approx(0.251)
    assert poll_timeout(now + 60, now) == IDLE_POLL
    assert poll_timeout(now - 5, now) == pytest.approx(0.001)  # overdue: look again at once


def test_a_lease_starts_only_in_contact_and_when_newer_than_every_revoked_lease() -> None:
    assert lease_accepted(True, lease_seq=5, revoked_through=4)
    assert not lease_accepted(True, lease_seq=4, revoked_through=4)  # revoked while in transit
    assert not lease_accepted(False, lease_seq=5, revoked_through=0)  # the engine may take it back


def test_contact_lasts_the_worker_timeout_after_the_last_acknowledged_heartbeat() -> None:
    assert in_contact(acked_at=100.0, now=129.9, worker_timeout=30.0)
    assert not in_contact(acked_at=100.0, now=130.0, worker_timeout=30.0)


# -- when to kill -----------------------------------------------------------------------------


def test_an_attempt_s_deadline_counts_the_compute_it_used_before_it_was_suspended() -> None:
    assert attempt_deadline(started=50.0, max_duration=10.0, compute_used=0.0) == 60.0
    assert attempt_deadline(started=50.0, max_duration=10.0, compute_used=4.0) == 56.0
    assert attempt_deadline(started=50.0, max_duration=None, compute_used=4.0) is None
    assert attempt_deadline(started=50.0, max_duration=0, compute_used=0.0) is None


def test_an_executor_is_killed_a_grace_after_an_attempt_s_deadline() -> None:
    assert not past_deadline(None, now=1e9)  # no limit
    assert not past_deadline(60.0, now=60.5)  # past, but within the grace
    assert not past_deadline(60.0, now=60.0 + KILL_GRACE)
    assert past_deadline(60.0, now=60.0 + KILL_GRACE + 0.01)


def test_an_executor_over_its_machine_s_memory_is_killed_with_the_figures() -> None:
    # small-1x has 0.5 GB
    assert memory_kill_reason("small-1x", 512 * MB) is None
    assert memory_kill_reason("small-1x", 600 * MB) == (
        "out_of_memory:600 MB used, machine small-1x has 512 MB"
    )
    assert memory_kill_reason("large-2x", 600 * MB) is None
    assert memory_kill_reason("no-such-machine", 10**12) is None  # no limit known


def test_a_crash_looping_executor_waits_before_it_starts_again() -> None:
    restarts: list[float] = []
    delays = []
    for i in range(6):
        restarts, delay = restart_delay(restarts, now=100.0 + i)
        delays.append(delay)
    assert delays == [0.0, 0.0, 0.0, 0.0, RESTART_BACKOFF, RESTART_BACKOFF]
    # restarts older than the window are forgotten: a crash now and then starts again at once
    restarts, delay = restart_delay(restarts, now=200.0)
    assert (restarts, delay) == ([200.0], 0.0)


# -- what to report when an executor exits ----------------------------------------------------


def test_the_attempt_that_overran_its_deadline_timed_out() -> None:
    outcome = exit_outcome("run_a", 2, 30.0, reason="timed_out:run_a", code=-9)
    assert (outcome.run_id, outcome.attempt, outcome.kind) == ("run_a", 2, "timed_out")
    assert outcome.error is not None
    assert outcome.error["code"] == "timed_out"
    assert "max_duration of 30s" in outcome.error["message"]


def test_attempts_that_only_shared_the_killed_executor_are_interrupted_not_failed() -> None:
    outcome = exit_outcome("run_b", 1, 30.0, reason="timed_out:run_a", code=-9)
    assert outcome.kind == "interrupted"  # runs again, keeps its retries
    assert outcome.error is not None and outcome.error["code"] == "interrupted"


def test_attempts_stopped_for_lost_contact_are_interrupted() -> None:
    outcome = exit_outcome("run_a", 1, None, reason="lost_contact", code=-9)
    assert outcome.kind == "interrupted"
    assert outcome.error is not None and "lost contact" in outcome.error["message"]


def test_attempts_of_an_executor_over_its_memory_crashed_out_of_memory() -> None:
    reason = memory_kill_reason("micro", 300 * MB)
    assert reason is not None
    outcome = exit_outcome("run_a", 1, None, reason=reason, code=-9)
    assert outcome.kind == "crashed"
    assert outcome.error == {
        "name": "OutOfMemory",
        "code": "out_of_memory",
        "message": "The executor ran out of memory: 300 MB used, machine micro has 256 MB.",
    }


@pytest.mark.parametrize(
    ("reason", "code", "message"),
    [
        (None, -11, "The process running this attempt was killed by signal 11."),
        (None, 1, "The process running this attempt exited with code 1."),
        ("retired", -9, "The process running this attempt was killed by signal 9 (retired)."),
    ],
)
def test_any_other_exit_is_a_crash_that_says_how(
    reason: str | None, code: int | None, message: str
) -> None:
    outcome = exit_outcome("run_a", 3, 10.0, reason=reason, code=code)
    assert (outcome.kind, outcome.attempt) == ("crashed", 3)
    assert outcome.error == {"name": "ExecutorCrashed", "code": "crashed", "message": message}


def test_a_lease_answer_late_on_the_network_is_checked_before_it_starts() -> None:
    assert not lease_late(0.05)  # the usual: milliseconds on a LAN
    assert not lease_late(LATE_LEASE)
    assert lease_late(LATE_LEASE + 0.5)  # a partition that healed, a congested link
