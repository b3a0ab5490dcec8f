"""Durability with processes killed for real: steps and children are never repeated."""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.conftest import executor_pids, wait_for


def log_attr(client, run_id, message, attr):
    def find():
        for line in client.runs.logs(run_id):
            if line.message == message:
                return line.attributes[attr]
        return None

    return wait_for(find, what=f"log line {message!r}")


def test_a_step_is_not_repeated_when_its_executor_is_killed(client, platform):
    handle = client.trigger("crash-after-step", {})
    os.kill(log_attr(client, handle.id, "pid", "pid"), signal.SIGKILL)
    run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "COMPLETED" and run.output == 2
    assert platform.effects().count(f"once {handle.id}") == 1


def test_kill_9_of_the_platform_while_runs_wait_and_execute(fresh_platform):
    fresh_platform.start()
    with fresh_platform.client() as client:
        waiting = client.trigger("napper", {"seconds": 7})
        executing = client.trigger("crash-after-step", {})
        fan = client.trigger("fan-out", {"count": 4, "max_attempts": 3})
        wait_for(lambda: client.runs.retrieve(waiting.id).status == "WAITING", what="WAITING")
        log_attr(client, executing.id, "pid", "pid")
    fresh_platform.kill9()
    time.sleep(1)
    fresh_platform.start()
    with fresh_platform.client() as client:
        runs = {h.id: client.runs.poll(h.id, timeout=60) for h in (waiting, executing, fan)}
    assert [r.status for r in runs.values()] == ["COMPLETED"] * 3
    effects = fresh_platform.effects()
    assert effects.count(f"first {waiting.id}") == 1 and effects.count(f"second {waiting.id}") == 1
    assert effects.count(f"once {executing.id}") == 1
    assert runs[fan.id].output["outputs"] == [0, 2, 4, 6]
    children = [c for c in client_runs(fresh_platform, "double") if c.parent_id == fan.id]
    assert (
        len(children) == 5
    )  # one trigger_and_wait child and a batch of four: none triggered twice


def client_runs(platform, task):
    with platform.client() as client:
        return client.runs.list(task=task, limit=100).data


def test_a_changed_durable_call_is_a_clear_journal_mismatch(fresh_platform):
    fresh_platform.start()
    with fresh_platform.client() as client:
        handle = client.trigger("renamed", {})
        wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="WAITING")
        source = fresh_platform.root / "tasks" / "durable.py"
        source.write_text(source.read_text().replace('"original-name"', '"new-name"'))
        fresh_platform.load_changed_code()
        run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "FAILED"
    assert run.error.code == "journal_mismatch"
    assert "original-name" in run.error.message


def test_a_thousand_waiting_runs_hold_no_process(fresh_platform):
    fresh_platform.start()
    before = len(executor_pids(fresh_platform))
    with fresh_platform.client() as client:
        gate = client.waitpoints.create_token()
        for _ in range(2):
            client.batch_trigger("gated", [{"payload": {"gate": gate.id}}] * 500)
        wait_for(
            lambda: len(client.runs.list(status="WAITING", limit=1000, task="gated").data) == 1000,
            timeout=90,
            interval=0.5,
            what="1,000 runs WAITING",
        )
        assert len(executor_pids(fresh_platform)) == before
        assert {q.name: q.running for q in client.queues.list()}["gated"] == 0
        client.waitpoints.complete_token(gate.id, {"open": True})  # one token resumes them all
        done = wait_for(
            lambda: (lambda runs: runs if len(runs) == 1000 else None)(
                client.runs.list(status="COMPLETED", limit=1000, task="gated").data
            ),
            timeout=150,
            interval=0.5,
            what="all to complete",
        )
    assert all(run.output == {"open": True} for run in done)
    # a burst of durable calls never made a worker look lost: no attempt was stopped or taken back
    assert {run.attempts for run in done} == {1}
