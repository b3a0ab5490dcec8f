"""Conveyor on PostgreSQL for the postgres suite: one `conveyor server` over a fresh database
and one `conveyor worker` running projects/noop, set up the way a team would: the admin token
the server prints on its first start makes a project over the HTTP API, and the worker and the
benchmark client use that project's prod key. Triggers and reads go through the public
`conveyor.Client`, as a backend's would.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pg_counters
from conveyor_side import stamp_once
from processes import Service, ServiceExited, free_port, project_key, wait_until

from conveyor import Client

PROJECT = Path(__file__).resolve().parent / "projects" / "noop"
DATABASE = "bench_conveyor"
UNFINISHED = ["QUEUED", "DEQUEUED", "EXECUTING"]


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class ConveyorServer:
    """`conveyor server` on PostgreSQL plus one `conveyor worker` (executors, capacity as given)."""

    name = "conveyor"
    database = DATABASE

    def __init__(self, log_dir: Path, executors: int = 2, capacity: int = 500) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.executors = executors
        self.capacity = capacity
        self.url = pg_counters.database_url(DATABASE)
        self._home = Path(tempfile.mkdtemp(prefix="conveyor-server-bench-"))
        python = sys.executable
        self.server = Service(
            "conveyor-server",
            [
                python,
                "-m",
                "conveyor.cli.main",
                "server",
                "--database-url",
                self.url,
                "--port",
                str(self.port),
            ],
            cwd=self._home,
            log_path=log_dir / "conveyor-server.log",
        )
        self.worker_argv = [
            python,
            "-m",
            "conveyor.cli.main",
            "worker",
            "--executors",
            str(executors),
            "--capacity",
            str(capacity),
            "--quiet",
        ]
        self.worker: Service | None = None
        self.client: Client | None = None
        self.note = (
            f"conveyor server --database-url {self.url} + conveyor worker --executors {executors} "
            f"--capacity {capacity} --quiet (projects/noop, prod key)"
        )

    @property
    def services(self) -> list[Service]:
        return [s for s in (self.server, self.worker) if s is not None]

    def start(self, timeout: float = 90.0) -> None:
        pg_counters.recreate(DATABASE)
        self.server.start()

        secret = project_key(self.server, self.api_url, "bench", timeout)
        env = dict(os.environ, CONVEYOR_API_URL=self.api_url, CONVEYOR_SECRET_KEY=secret)
        self.worker = Service(
            "conveyor-worker",
            self.worker_argv,
            cwd=PROJECT,
            log_path=self.log_dir / "conveyor-worker.log",
            env=env,
        )
        self.worker.start()
        self.client = Client(api_url=self.api_url, secret_key=secret, timeout=60)
        client, worker = self.client, self.worker

        def tasks_loaded() -> bool:
            for service in (self.server, worker):
                if not service.alive():
                    raise ServiceExited(f"{service.name} exited:\n{service.log_tail()}")
            return {"noop", "stamp"} <= {t.id for t in client.tasks.list()}

        wait_until(
            tasks_loaded, timeout, what="conveyor worker to register the tasks noop and stamp"
        )

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.worker is not None:
            self.worker.stop()
        self.server.stop()
        pg_counters.drop(DATABASE)
        shutil.rmtree(self._home, ignore_errors=True)
        # nothing should be there; never leave state
        shutil.rmtree(PROJECT / ".conveyor", ignore_errors=True)

    def _client(self) -> Client:
        assert self.client is not None, "start() first"
        return self.client

    def trigger_noops(self, n: int, batch_size: int) -> None:
        client = self._client()
        items: list[dict[str, Any]] = [{"payload": {}}] * batch_size
        while n:
            client.batch_trigger("noop", items[: min(batch_size, n)])
            n -= min(batch_size, n)

    def trigger_noop(self) -> None:
        self._client().trigger("noop", {})

    def pending(self) -> bool:
        return bool(self._client().runs.list(status=UNFINISHED, limit=1).data)

    def noop_runs(self) -> list[tuple[bool, float | None, float | None]]:
        """(completed, started_at, completed_at) of every noop run,
        as the platform recorded them."""
        client = self._client()
        out: list[tuple[bool, float | None, float | None]] = []
        cursor = None
        for _ in range(1000):
            page = client.runs.list(task="noop", limit=1000, cursor=cursor)
            out += [
                (r.status.value == "COMPLETED", _epoch(r.started_at), _epoch(r.completed_at))
                for r in page.data
            ]
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    def stamp(self, poll: float, timeout: float) -> tuple[float, float]:
        """Trigger `stamp`, poll the run until it ends: (when the trigger call returned, the
        task's own time.time() at start)."""
        return stamp_once(self._client(), poll, timeout)
