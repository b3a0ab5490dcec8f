"""A worker whose network to the server is slow: a lease answer that spent seconds on the way
may carry runs canceled meanwhile. The worker checks such an answer with a heartbeat before it
starts anything (a cancel that returned CANCELED is never followed by a start of the body), and
a link that stays slow still runs everything (the check costs one round trip, it refuses
nothing that is still wanted).

The worker reaches its server through a TCP proxy that delays every chunk by the seconds in a
control file (tests/campaign/proxy.py), on this machine's loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DevServer, WorkerProcess, free_port, make_project, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DevServer]:
    # the worker timeout sets the heartbeat interval (a third of it) and a heartbeat's timeout
    timeout = getattr(request, "param", 20)
    server = DevServer(
        make_project(tmp_path), free_port(), args=("--no-worker", "--worker-timeout", str(timeout))
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def delayed(server: DevServer, tmp_path: Path) -> Iterator[tuple[WorkerProcess, Path]]:
    """A worker behind the delaying proxy, and the proxy's control file (seconds per chunk)."""
    control = tmp_path / "delay"
    control.write_text("0")
    port = free_port()
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.campaign.proxy",
            str(port),
            "127.0.0.1",
            str(server.port),
            str(control),
        ],
        cwd=REPO,
    )
    worker = WorkerProcess(server, "far", env={"CONVEYOR_API_URL": f"http://127.0.0.1:{port}"})
    try:
        wait_for(lambda: _listening(port), timeout=10, what="the proxy to listen")
        worker.start()
        yield worker, control
    finally:
        worker.stop()
        proxy.kill()
        proxy.wait()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def starts(server: DevServer) -> list[str]:
    path = server.root / "starts.log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_run_canceled_while_its_lease_answer_is_on_the_way_never_starts(
    server: DevServer, delayed: tuple[WorkerProcess, Path]
) -> None:
    worker, control = delayed
    with server.client() as client:
        warm = client.trigger("fleet", {"seconds": 0.01})
        assert client.runs.poll(warm.id, timeout=30).status == "COMPLETED"
        time.sleep(1)  # the worker's next long poll is at the server, waiting for a run

        control.write_text("2.5")  # from now on every chunk, both ways, takes 2.5 s
        time.sleep(0.5)
        run = client.trigger("fleet", {"seconds": 5})
        time.sleep(0.3)  # the lease answer for it is in the proxy now
        canceled = client.runs.cancel(run.id)
        assert canceled.status == "CANCELED"

        time.sleep(8)  # the answer arrives, the worker checks it, the heartbeat says stop
        assert run.id not in starts(server), "the body started after its cancel returned"

        # a link that stays this slow still runs what is wanted
        slow = client.trigger("fleet", {"seconds": 0.01})
        assert client.runs.poll(slow.id, timeout=60).status == "COMPLETED"
        assert slow.id in starts(server)
        control.write_text("0")
        assert client.runs.retrieve(run.id).status == "CANCELED"
    assert "lease_refused" not in worker.output()
    assert worker.proc is not None and worker.proc.poll() is None


@pytest.mark.parametrize("server", [12], indirect=True)  # a heartbeat every 4 s
def test_runs_of_a_late_lease_answer_start_once_while_it_is_checked(
    server: DevServer, delayed: tuple[WorkerProcess, Path]
) -> None:
    """While a late answer's runs are checked, the worker's regular heartbeats go on: each one
    must list those runs as the worker's, or the engine takes them back as never received and
    leases them again (the same worker then ran the first attempt and the second at once)."""
    worker, control = delayed
    with server.client() as client:
        warm = client.trigger("fleet", {"seconds": 0.01})
        assert client.runs.poll(warm.id, timeout=30).status == "COMPLETED"
        # requests reach the server at once, answers take 3 s: every lease answer is late and
        # checked for 3 s, and a heartbeat every 4 s falls inside three checks in four
        control.write_text("0 3")
        time.sleep(1)
        runs = []
        for _ in range(3):
            run = client.trigger("fleet", {"seconds": 4})
            done = client.runs.poll(run.id, timeout=60)
            assert done.status == "COMPLETED", done
            runs.append(done)
        control.write_text("0")
    started = starts(server)
    for run in runs:
        assert started.count(run.id) == 1, f"{run.id} started {started.count(run.id)} times"
        assert run.attempts == 1, run.attempts
    assert "lease_refused" not in worker.output()
