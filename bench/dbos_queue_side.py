"""DBOS's queue on PostgreSQL for the postgres suite: one process running `dbos_app.py --workload
serve` (DBOS launched on a fresh system database, the queue `bench` registered with the given
polling interval and no concurrency limit, DBOS's defaults otherwise) works what the benchmark
enqueues from outside with `DBOSClient`, as a separate backend would.

DBOS has no batch enqueue. A batch here is the fastest way its public API offers: the 1,000
`DBOSClient.enqueue_in_transaction` calls of a batch inside one transaction (one commit per
batch, as Conveyor's batch call and Procrastinate's `batch_defer_async` do). A single run is one
`DBOSClient.enqueue`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pg_counters
from processes import Service, ServiceExited, wait_until

BENCH_DIR = Path(__file__).resolve().parent
DATABASE = "bench_dbos"
QUEUE = "bench"


class DBOSQueueWorker:
    """The DBOS worker process (dbos_app.py serve) on a fresh system database, and a client."""

    name = "dbos"
    database = DATABASE

    def __init__(self, log_dir: Path, poll: float = 1.0, label: str = "dbos") -> None:
        self.name = label
        self.url = pg_counters.database_url(DATABASE)
        self.poll = poll
        self._handshake = Path(tempfile.mkdtemp(prefix="dbos-queue-"))
        argv = [
            sys.executable,
            str(BENCH_DIR / "dbos_app.py"),
            "--workload",
            "serve",
            "--database",
            self.url,
            "--dir",
            str(self._handshake),
            "--poll",
            str(poll),
            "--timeout",
            "86400",
        ]
        self.worker = Service("dbos", argv, cwd=BENCH_DIR, log_path=log_dir / f"{label}-worker.log")
        self.note = (
            f"python bench/dbos_app.py --workload serve: DBOS launched, queue `{QUEUE}` "
            f"(polling_interval_sec={poll:g}, no concurrency limit); enqueued with DBOSClient"
        )
        self._client: Any = None
        self._engine: Any = None

    @property
    def services(self) -> list[Service]:
        return [self.worker]

    def _sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(query, params).fetchall()

    def start(self, timeout: float = 120.0) -> None:
        import sqlalchemy as sa
        from dbos import DBOSClient

        pg_counters.recreate(DATABASE)
        self.worker.start()

        def ready() -> bool:
            if not self.worker.alive():
                raise ServiceExited(f"the DBOS process exited:\n{self.worker.log_tail()}")
            return (self._handshake / "ready").exists()

        wait_until(ready, timeout, interval=0.05, what="DBOS to launch")
        self._client = DBOSClient(system_database_url=self.url)
        self._engine = sa.create_engine(
            self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        )

    def stop(self) -> None:
        try:
            if self._client is not None:
                self._client.destroy()
            if self._engine is not None:
                self._engine.dispose()
        finally:
            self.worker.stop()
            pg_counters.drop(DATABASE)
            shutil.rmtree(self._handshake, ignore_errors=True)

    def _options(self, workflow: str) -> Any:
        return {"queue_name": QUEUE, "workflow_name": workflow}

    def trigger_noops(self, n: int, batch_size: int) -> None:
        options = self._options("noop_wf")
        while n:
            with self._engine.begin() as conn:
                for _ in range(min(batch_size, n)):
                    self._client.enqueue_in_transaction(conn, options)
            n -= min(batch_size, n)

    def trigger_noop(self) -> None:
        self._client.enqueue(self._options("noop_wf"))

    def pending(self) -> bool:
        return bool(
            self._sql(
                "SELECT 1 FROM dbos.workflow_status WHERE status IN ('ENQUEUED', 'PENDING') LIMIT 1"
            )
        )

    def noop_runs(self) -> list[tuple[bool, float | None, float | None]]:
        rows = self._sql(
            "SELECT status = 'SUCCESS', started_at_epoch_ms, coalesce(completed_at, updated_at) "
            "FROM dbos.workflow_status WHERE name = 'noop_wf'"
        )
        return [
            (bool(ok), s / 1000 if s is not None else None, c / 1000 if c is not None else None)
            for ok, s, c in rows
        ]

    def stamp(self, poll: float, timeout: float) -> tuple[float, float]:
        handle = self._client.enqueue(self._options("stamp_wf"))
        returned = time.time()
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(poll)
            status = handle.get_status().status
            if status not in ("ENQUEUED", "PENDING"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"workflow {handle.get_workflow_id()} did not end within {timeout:g}s"
                )
        if status != "SUCCESS":
            raise RuntimeError(f"stamp workflow {handle.get_workflow_id()} ended {status}")
        return returned, float(handle.get_result()["started"])
