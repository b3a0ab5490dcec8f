"""`conveyor worker` processes: they share the work, and killing one alone loses nothing."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    DevServer,
    WorkerProcess,
    free_port,
    make_project,
    peak_overlap,
    wait_for,
)


@pytest.fixture
def server_only(tmp_path) -> Iterator[DevServer]:
    server = DevServer(
        make_project(tmp_path), free_port(), args=("--no-worker", "--worker-timeout", "3")
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def patient_server(tmp_path) -> Iterator[DevServer]:
    """A server that gives workers 20 s of silence: on a loaded machine a late heartbeat must
    not look like a lost worker here (that case has its own test)."""
    server = DevServer(
        make_project(tmp_path), free_port(), args=("--no-worker", "--worker-timeout", "20")
    )
    server.start()
    yield server
    server.stop()


def test_two_workers_share_runs_within_the_queue_limit(patient_server):
    workers = [WorkerProcess(patient_server, name) for name in ("alpha", "beta")]
    try:
        for w in workers:
            w.start()
        with patient_server.client() as client:
            handles = [client.trigger("sleepy", {"seconds": 0.5}) for _ in range(12)]
            runs = [client.runs.poll(h.id, timeout=60) for h in handles]
        assert [r.status for r in runs] == ["COMPLETED"] * 12
        assert [r.attempts for r in runs] == [1] * 12  # so each run's span is its one attempt
        assert peak_overlap(runs) == 3  # queue "three" has limit 3, across both workers
        assert all(w.output().count("✔ sleepy") >= 1 for w in workers), "both workers ran some"
    finally:
        for w in workers:
            w.stop()


def test_kill_9_of_one_worker_alone_its_runs_finish_on_another(server_only):
    first = WorkerProcess(server_only, "first")
    second = WorkerProcess(server_only, "second")
    try:
        first.start()
        with server_only.client() as client:
            executing = client.trigger("crash-after-step", {})
            waiting = client.trigger("napper", {"seconds": 7})
            wait_for(lambda: client.runs.retrieve(waiting.id).status == "WAITING", what="WAITING")
            wait_for(
                lambda: any(line.message == "pid" for line in client.runs.logs(executing.id)),
                what="EXECUTING",
            )
            first.kill9()
            second.start()
            runs = {h.id: client.runs.poll(h.id, timeout=60) for h in (executing, waiting)}
        assert runs[executing.id].status == "COMPLETED", runs[executing.id].error
        assert runs[waiting.id].status == "COMPLETED", runs[waiting.id].error
        crashed = runs[executing.id].attempt_list[0]
        assert crashed.status == "CRASHED" and "heartbeat" in crashed.error.message
        effects = server_only.effects()
        assert effects.count(f"once {executing.id}") == 1
        assert (
            effects.count(f"first {waiting.id}") == 1 and effects.count(f"second {waiting.id}") == 1
        )
    finally:
        first.stop()
        second.stop()


def test_a_worker_stopped_with_ctrl_c_gives_its_runs_back_at_once(server_only):
    first = WorkerProcess(server_only, "first")
    second = WorkerProcess(server_only, "second")
    try:
        first.start()
        with server_only.client() as client:
            handle = client.trigger("blocker", {})
            wait_for(
                lambda: client.runs.retrieve(handle.id).status == "EXECUTING", what="EXECUTING"
            )
            os.killpg(first.proc.pid, signal.SIGINT)
            first.proc.wait(20)
            run = client.runs.retrieve(
                handle.id,
            )
            assert run.status == "QUEUED"  # handed back, not waiting for a missed heartbeat
            assert run.attempt_list is None or all(
                a.status != "CRASHED" for a in run.attempt_list or []
            )
            second.start()
            wait_for(
                lambda: client.runs.retrieve(handle.id).status == "EXECUTING",
                what="the second worker",
            )
            client.runs.cancel(handle.id)
    finally:
        first.stop()
        second.stop()
