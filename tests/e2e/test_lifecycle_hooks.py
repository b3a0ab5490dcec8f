"""on_complete, on_wait and on_resume on both topologies: on_complete fires once per run, after
it completed or failed, also for a run that ended without any worker (owed by the engine like
on_failure); on_wait before each wait and on_resume after it, once each, the duration's in the
attempt that resumed the suspended run."""

from __future__ import annotations

import time

from tests.e2e.conftest import wait_for


def lines_of(platform, run_id: str) -> list[str]:
    return [line for line in platform.hooks() if f" {run_id} " in f"{line} "]


def test_on_complete_fires_once_for_a_completed_and_a_failed_run(client, platform):
    done = client.trigger("completes-or-fails", {"n": 7})
    failed = client.trigger("completes-or-fails", {"fail": True})
    assert client.runs.poll(done.id, timeout=30).status == "COMPLETED"
    assert client.runs.poll(failed.id, timeout=30).status == "FAILED"
    wait_for(lambda: lines_of(platform, done.id) and lines_of(platform, failed.id), what="hooks")
    time.sleep(1)
    assert lines_of(platform, done.id) == [f"on_complete {done.id} ok 7"]
    assert lines_of(platform, failed.id) == [f"on_complete {failed.id} FAILED None"]


def test_a_run_that_expires_unstarted_gets_its_on_complete_once(client, platform):
    client.queues.pause("parked-completing")
    try:
        handle = client.trigger("expires-completing", {}, ttl=1)
        assert client.runs.poll(handle.id, timeout=15).status == "EXPIRED"
        wait_for(lambda: lines_of(platform, handle.id), what="on_complete")
        time.sleep(1)
        assert lines_of(platform, handle.id) == [f"on_complete {handle.id} EXPIRED expired"]
    finally:
        client.queues.resume("parked-completing")


def test_each_wait_gets_on_wait_then_on_resume_once_across_the_suspension(client, platform):
    handle = client.trigger("waits-with-hooks", {})
    run = client.runs.poll(handle.id, timeout=60)
    assert run.status == "COMPLETED" and run.output == 2
    time.sleep(0.5)
    calls = [line.split() for line in lines_of(platform, handle.id)]
    assert [(c[0], c[2]) for c in calls] == [
        ("on_wait", "duration"),
        ("on_resume", "duration"),
        ("on_wait", "run"),
        ("on_resume", "run"),
    ], calls
    assert calls[0][3] == calls[1][3] and calls[2][3] == calls[3][3]  # the same wait's id
    assert calls[2][3].startswith("run_") and calls[2][3] != handle.id  # the child's
    assert float(calls[1][4]) - float(calls[0][4]) >= 5.9  # after the wait, not on a replay


def test_a_token_wait_gets_on_wait_then_on_resume_with_the_token_id(client, platform):
    handle = client.trigger("waits-for-token-with-hooks", {})

    def token_id():
        for line in client.runs.logs(handle.id):
            if line.message == "token" and line.attributes:
                return line.attributes["id"]
        return None

    token = wait_for(token_id, what="the token")
    wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="the suspension")
    client.waitpoints.complete_token(token, {"approved": True})
    run = client.runs.poll(handle.id, timeout=60)
    assert run.status == "COMPLETED" and run.output == {"approved": True}
    time.sleep(0.5)
    calls = [line.split()[:4] for line in lines_of(platform, handle.id)]
    assert calls == [
        ["on_wait", handle.id, "token", token],
        ["on_resume", handle.id, "token", token],
    ], calls
