"""Many servers and many workers on one database, as a team runs them: `fleet_on` starts
`conveyor server` processes on a database URL, makes a project and its prod key through the first
one, and starts `conveyor worker` processes, each for one of the servers. Used by
tests/e2e/test_fleet_postgres.py and tests/e2e/test_flow_control_fleet.py."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor import Client
from tests.e2e.conftest import ServerProcess, WorkerProcess

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


@dataclass
class Fleet:
    root: Path
    servers: list[ServerProcess]
    workers: list[WorkerProcess]

    def executions(self) -> list[tuple[str, int, str, float, float]]:
        """(run, attempt, worker, started, ended) of every execution of the `fleet` task body
        (tests/e2e/project/tasks/fleet.py)."""
        path = self.root / "executions.log"
        rows = []
        for line in path.read_text().splitlines() if path.exists() else []:
            run, attempt, worker, started, ended = line.split()
            rows.append((run, int(attempt), worker, float(started), float(ended)))
        return rows

    def client(self, i: int) -> Client:
        return Client(self.servers[i].api_url, self.servers[i].secret_key)


@contextlib.contextmanager
def fleet_on(
    url: str,
    root: Path,
    *,
    workers: Sequence[int] = (0, 0, 1),
    hosts: Sequence[str] = ("127.0.0.1", "127.0.0.1"),
    worker_timeout: float = 10,
    executors: int = 1,
    capacity: int | None = None,
) -> Iterator[Fleet]:
    """One server per address of `hosts` and one worker per item of `workers` (the index of
        the server it works for) over the database at `url`. Worker `wS-N` (the N-th of server S)
        has its name in the variable FLEET_WORKER, which the project's tasks record; `capacity` is
    each worker's `--capacity` (attempts at once)."""
    servers = [
        ServerProcess(
            root=root, database_url=url, name=f"server{i}", host=host, worker_timeout=worker_timeout
        )
        for i, host in enumerate(hosts)
    ]
    started: list[WorkerProcess] = []
    try:
        token = TOKEN.findall(servers[0].start())[0]
        for server in servers[1:]:
            server.start()
        with Client(servers[0].api_url, token) as admin:
            admin.projects.create("Fleet")
            key = admin.projects.key("fleet", "prod").secret_key
        for server in servers:
            server.secret_key = key
        count: dict[int, int] = {}
        for i in workers:
            n = count[i] = count.get(i, -1) + 1
            name = f"w{i}-{n}"
            started.append(
                WorkerProcess(
                    servers[i],
                    name,
                    env={"FLEET_WORKER": name},
                    executors=executors,
                    capacity=capacity,
                )
            )
        for worker in started:
            worker.launch()
        for worker in started:
            worker.wait_loaded()
        yield Fleet(root, servers, started)
    finally:
        for worker in started:
            worker.stop()
        for server in servers:
            server.stop()
