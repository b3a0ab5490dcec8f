"""What durable execution promises at its edges: waits are not compute time, logs survive a
resume, and mistakes in task code fail clearly instead of silently."""

from __future__ import annotations

import psutil

from tests.e2e.conftest import executor_pids, wait_for


def test_a_short_wait_does_not_count_against_max_duration(client):
    run = client.runs.poll(client.trigger("short-wait-in-budget", {}).id, timeout=20)
    assert run.status == "COMPLETED", run.error


def test_log_lines_written_before_and_after_a_suspension_are_all_kept(client):
    handle = client.trigger("logs-across-resume", {})
    assert client.runs.poll(handle.id, timeout=30).status == "COMPLETED"
    messages = [line.message for line in client.runs.logs(handle.id)]
    assert messages == ["before 1", "before 2", "after 0", "after 1", "after 2"]


def test_returning_a_result_fails_with_a_hint_and_is_not_retried(client):
    run = client.runs.poll(client.trigger("returns-result", {}).id, timeout=30)
    assert run.status == "FAILED" and run.attempts == 1
    assert "result.output" in run.error.message


def test_an_output_that_is_not_json_fails_once(client):
    run = client.runs.poll(client.trigger("returns-set", {}).id, timeout=20)
    assert run.status == "FAILED" and run.attempts == 1 and run.error.code == "output_invalid"


def test_durable_calls_in_a_sync_task_are_a_clear_error(client, platform):
    run = client.runs.poll(client.trigger("sync-durable", {}).id, timeout=30)
    assert run.status == "FAILED"
    assert "async def" in run.error.message
    assert "never" not in platform.effects()


def test_a_timed_out_sync_task_leaves_no_spinning_process(client, platform):
    before = executor_pids(platform)
    run = client.runs.poll(client.trigger("sync-spinner", {}).id, timeout=20)
    assert run.status == "TIMED_OUT"
    # the executor with the runaway thread is replaced and killed, not left spinning
    wait_for(
        lambda: (
            all(
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                for pid in before - executor_pids(platform)
            )
            and len(executor_pids(platform)) == len(before)
        ),
        timeout=20,
        what="the old executor to go",
    )


def test_runs_leased_while_a_timed_out_executor_is_replaced_still_run(fresh_platform):
    """A timed-out sync task leaves a thread that cannot be stopped, so its executor is replaced;
    runs handed to the worker while the replacement starts wait for it, then run."""
    fresh_platform.use_executors(1)
    fresh_platform.start()
    with fresh_platform.client() as client:
        spinner = client.trigger("sync-spinner", {})
        wait_for(
            lambda: client.runs.retrieve(spinner.id).status == "TIMED_OUT",
            what="the spinner to time out",
        )
        handles = [client.trigger("echo", {"i": i}) for i in range(6)]
        runs = [client.runs.poll(h.id, timeout=30) for h in handles]
    assert [r.output for r in runs] == [{"i": i} for i in range(6)]
