"""Retries follow the policy; aborts, timeouts and hooks behave as documented."""

from __future__ import annotations

from tests.e2e.conftest import wait_for


def test_a_task_failing_twice_succeeds_on_attempt_three_with_formula_delays(client, platform):
    handle = client.trigger("flaky", {})
    run = client.runs.poll(handle.id, interval=0.1, timeout=20)
    assert run.status == "COMPLETED" and run.output == {"attempt": 3}
    attempts = run.attempt_list
    assert [a.status for a in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    gaps = [
        (attempts[i + 1].started_at - attempts[i].completed_at).total_seconds() for i in range(2)
    ]
    # min_timeout_ms 300, factor 2, no jitter: 0.3 s then 0.6 s (plus scheduling slack)
    assert 0.28 <= gaps[0] < 0.6, gaps
    assert 0.58 <= gaps[1] < 0.9, gaps
    wait_for(lambda: f"on_success {handle.id}" in platform.hooks(), what="on_success")
    assert not any(handle.id in line and "on_failure" in line for line in platform.hooks())


def test_abort_fails_after_one_attempt_and_on_failure_runs_once(client, platform):
    handle = client.trigger("aborter", {})
    run = client.runs.poll(handle.id, timeout=20)
    assert run.status == "FAILED" and run.attempts == 1
    assert run.error.message == "stop here"
    wait_for(lambda: any(handle.id in line for line in platform.hooks()), what="on_failure")
    import time

    time.sleep(1.0)
    assert [line for line in platform.hooks() if handle.id in line] == [
        f"on_failure {handle.id} aborted"
    ]


def test_cpu_bound_loop_past_max_duration_ends_timed_out_and_on_failure_runs(client, platform):
    for task_id in ("spinner", "sync-spinner"):
        handle = client.trigger(task_id, {})
        run = client.runs.poll(handle.id, timeout=20)
        assert run.status == "TIMED_OUT", (task_id, run.error)
        assert run.attempts == 1
        duration = (run.completed_at - run.started_at).total_seconds()
        assert 1.9 < duration < 6
        wait_for(
            lambda h=handle: f"on_failure {h.id} timed_out" in platform.hooks(), what="on_failure"
        )


def test_retry_on_throw_retries_a_block_in_place(client):
    run = client.runs.poll(client.trigger("retry-block", {}).id, timeout=20)
    assert run.status == "COMPLETED" and run.output == 3 and run.attempts == 1


def test_lifecycle_hooks_on_start_and_on_success_fire_once(client, platform):
    handle = client.trigger("echo", {"x": 1})
    assert client.runs.poll(handle.id, timeout=20).output == {"x": 1}
    wait_for(lambda: f"on_success {handle.id}" in platform.hooks(), what="on_success")
    assert platform.hooks().count(f"on_start {handle.id}") == 1
