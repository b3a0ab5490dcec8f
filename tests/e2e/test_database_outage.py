"""A database outage longer than the worker timeout, on a real `conveyor server` and `conveyor
worker` over a private PostgreSQL cluster that the test stops and starts again.

While the database is away the API answers 503 with Retry-After at once and /readyz says so
(/healthz, liveness, stays 200); the worker keeps the outcomes its attempts reached and reports
them once the database is back, and the server does not take its runs back for heartbeats it
could not record. Every run ends COMPLETED, its body executed once."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conveyor import Client
from tests.e2e.conftest import ServerProcess, WorkerProcess, make_project, wait_for
from tests.pg_cluster import PgCluster, pg_cluster

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")
WORKER_TIMEOUT = (
    10  # ServerProcess's --worker-timeout; the server takes back after 15 s (engine/workers.py)
)
OUTAGE = 17.0  # longer than the worker timeout and the take-back span


@dataclass
class Deployment:
    root: Path
    cluster: PgCluster
    server: ServerProcess
    worker: WorkerProcess

    def executions(self) -> list[tuple[str, int]]:
        """(run, attempt) of every execution of the `fleet` task's body that ran to its end."""
        path = self.root / "executions.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(line.split()[0], int(line.split()[1])) for line in lines]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    root = make_project(tmp_path)
    with pg_cluster() as cluster:
        server = ServerProcess(root=root, database_url=cluster.url)
        worker = None
        try:
            token = TOKEN.findall(server.start())[0]
            with Client(server.api_url, token) as admin:
                admin.projects.create("Outage")
                server.secret_key = admin.projects.key("outage", "prod").secret_key
            worker = WorkerProcess(server, "w", env={"FLEET_WORKER": "w"})
            worker.start()
            yield Deployment(root, cluster, server, worker)
        finally:
            if worker is not None:
                worker.stop()
            server.stop()


def timed_get(http: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    reply = http.get(path)
    return time.monotonic() - started, reply


def test_an_outage_longer_than_the_worker_timeout_loses_no_outcome_and_runs_nothing_twice(
    deployment: Deployment,
) -> None:
    server = deployment.server
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    with (
        Client(server.api_url, server.secret_key) as client,
        httpx.Client(base_url=server.api_url, headers=headers, timeout=30) as http,
    ):
        # four bodies of 3 s start (the queue's limit), four wait in the queue
        ids = [
            r.id
            for r in client.tasks.batch_trigger("fleet", [{"payload": {"seconds": 3}}] * 8).runs
        ]
        wait_for(
            lambda: client.queues.retrieve("four").running == 4,
            timeout=30,
            what="four runs to start",
        )
        assert http.get("/readyz").status_code == 200

        deployment.cluster.stop()  # the four bodies end during the outage
        away = time.monotonic()
        while time.monotonic() - away < OUTAGE:
            took, reply = timed_get(http, f"/api/v1/runs/{ids[0]}")
            assert reply.status_code == 503 and reply.json()["error"]["code"] == "unavailable", (
                reply.text
            )
            assert int(reply.headers["Retry-After"]) >= 1
            assert took < 2, f"a request during the outage took {took:.1f}s"
            took, ready = timed_get(http, "/readyz")
            assert ready.status_code == 503 and took < 2
            assert (
                http.get("/healthz").status_code == 200
            )  # the process lives: no restart is needed
            time.sleep(1)
        assert len(deployment.executions()) == 4  # they finished while the database was away
        deployment.cluster.start()

        wait_for(
            lambda: http.get("/readyz").status_code == 200,
            timeout=10,
            what="the server to be ready again",
        )
        wait_for(
            lambda: all(
                client.runs.retrieve(i).status.value in ("COMPLETED", "FAILED", "CRASHED")
                for i in ids
            ),
            timeout=60,
            interval=0.5,
            what="every run to end",
        )
        runs = [client.runs.retrieve(i) for i in ids]
    assert Counter(r.status.value for r in runs) == {"COMPLETED": 8}
    executions = deployment.executions()
    assert Counter(run for run, _ in executions) == dict.fromkeys(ids, 1)  # each body ran once
    attempts = dict(executions)
    for run in runs:  # the outcome that counted is the one of the attempt whose body ran
        assert run.attempts == attempts[run.id], run
    assert deployment.worker.proc is not None and deployment.worker.proc.poll() is None


def test_a_worker_stopped_during_an_outage_reports_what_finished_before_it_exits(
    deployment: Deployment,
) -> None:
    server, worker = deployment.server, deployment.worker
    with Client(server.api_url, server.secret_key) as client:
        ids = [
            r.id
            for r in client.tasks.batch_trigger("fleet", [{"payload": {"seconds": 1}}] * 6).runs
        ]
        wait_for(
            lambda: client.queues.retrieve("four").running == 4,
            timeout=30,
            what="four runs to start",
        )
        deployment.cluster.stop()
        wait_for(
            lambda: len(deployment.executions()) == 4, timeout=10, what="the four bodies to end"
        )
        assert worker.proc is not None
        os.killpg(
            worker.proc.pid, signal.SIGTERM
        )  # a deploy stops the worker while the database is away
        # a replacement started while the database is away waits to join instead of exiting
        replacement = WorkerProcess(server, "w2", env={"FLEET_WORKER": "w2"})
        replacement.launch()
        time.sleep(6)  # longer than a client's own resends of a call refused with 503
        assert replacement.proc is not None and replacement.proc.poll() is None
        assert "waiting: the server answers: the database is unreachable" in " ".join(
            replacement.output().split()
        )
        deployment.cluster.start()
        worker.proc.wait(30)  # it exits once it reported what its attempts reached
        try:
            replacement.wait_loaded(30)
            wait_for(
                lambda: all(
                    client.runs.retrieve(i).status.value in ("COMPLETED", "FAILED", "CRASHED")
                    for i in ids
                ),
                timeout=60,
                interval=0.5,
                what="every run to end",
            )
            runs = [client.runs.retrieve(i) for i in ids]
        finally:
            replacement.stop()
    assert Counter(r.status.value for r in runs) == {"COMPLETED": 6}
    assert Counter(run for run, _ in deployment.executions()) == dict.fromkeys(
        ids, 1
    )  # none ran again
