"""Processes killed for real: an executor, or the whole platform."""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.conftest import wait_for


def executor_pid(client, run_id: str) -> int:
    def find():
        for line in client.runs.logs(run_id):
            if line.message == "pid":
                return line.attributes["pid"]
        return None

    return wait_for(find, what="the attempt to log its pid")


def test_kill_9_of_an_executor_mid_attempt_is_retried(client):
    handle = client.trigger("pid", {})
    pid = executor_pid(client, handle.id)
    os.kill(pid, signal.SIGKILL)
    run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "COMPLETED" and run.output == {"attempt": 2}
    assert run.attempt_list[0].status == "CRASHED"
    assert "signal 9" in run.attempt_list[0].error.message


def test_an_executor_over_its_machine_memory_is_stopped_with_a_clear_error(client, platform):
    handle = client.trigger("hog", {})
    run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "CRASHED"
    assert run.error.code == "out_of_memory" and "micro" in run.error.message
    wait_for(lambda: f"on_failure {handle.id} out_of_memory" in platform.hooks(), what="on_failure")
    time.sleep(1)
    assert sum(handle.id in line for line in platform.hooks()) == 1


def test_a_run_that_expires_unstarted_gets_its_on_failure_once(client, platform):
    client.queues.pause("parked")
    try:
        handle = client.trigger("expiring", {}, ttl=1)
        assert client.runs.poll(handle.id, timeout=15).status == "EXPIRED"
        wait_for(lambda: f"on_failure {handle.id} expired" in platform.hooks(), what="on_failure")
        time.sleep(1)
        assert sum(handle.id in line for line in platform.hooks()) == 1
    finally:
        client.queues.resume("parked")


def test_kill_9_of_the_whole_platform_then_restart_finishes_the_run(fresh_platform):
    fresh_platform.start()
    with fresh_platform.client() as client:
        handle = client.trigger("pid", {})
        executor_pid(client, handle.id)
    fresh_platform.kill9()
    fresh_platform.start()
    with fresh_platform.client() as client:
        run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "COMPLETED" and run.output == {"attempt": 2}
