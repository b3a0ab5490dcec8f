"""Procrastinate on PostgreSQL for the postgres suite: its schema applied to a fresh database,
one `procrastinate worker` process (asyncio, `--concurrency N`, LISTEN/NOTIFY on, the default)
running procrastinate_app.py, and the benchmark deferring jobs with the app's own async API
(`batch_defer_async` for the batches, `defer_async` for single jobs).

Procrastinate records no start or end time on the job row; it records events (`deferred`,
`started`, `succeeded`, ...) with the database's `now()` in `procrastinate_events`, which is
where the start and completion times are read from.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pg_counters
from processes import Service, ServiceExited, wait_until

BENCH_DIR = Path(__file__).resolve().parent
DATABASE = "bench_procrastinate"


class ProcrastinateWorker:
    """One Procrastinate worker process on a fresh database, and an app to defer jobs with."""

    name = "procrastinate"
    database = DATABASE

    def __init__(self, log_dir: Path, concurrency: int = 50) -> None:
        self.url = pg_counters.database_url(DATABASE)
        self.concurrency = concurrency
        self.stamps = Path(tempfile.mkdtemp(prefix="procrastinate-stamps-"))
        env = dict(
            os.environ,
            BENCH_PROCRASTINATE_URL=self.url,
            BENCH_STAMP_DIR=str(self.stamps),
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])
            ),
        )
        argv = [
            sys.executable,
            "-m",
            "procrastinate",
            "--app",
            "procrastinate_app.app",
            "worker",
            "--concurrency",
            str(concurrency),
        ]
        self.worker = Service(
            "procrastinate",
            argv,
            cwd=BENCH_DIR,
            log_path=log_dir / "procrastinate-worker.log",
            env=env,
        )
        self.note = (
            f"procrastinate worker --concurrency {concurrency} (one process; LISTEN/NOTIFY on)"
        )
        self._loop = asyncio.new_event_loop()
        self._app: Any = None

    @property
    def services(self) -> list[Service]:
        return [self.worker]

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def _sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(query, params).fetchall()

    def start(self, timeout: float = 60.0) -> None:
        # read when procrastinate_app is imported (same URL always)
        os.environ["BENCH_PROCRASTINATE_URL"] = self.url
        os.environ["BENCH_STAMP_DIR"] = str(self.stamps)
        pg_counters.recreate(DATABASE)
        import procrastinate_app

        self._app = procrastinate_app.app
        self._run(self._app.open_async())
        self._run(self._app.schema_manager.apply_schema_async())
        self.worker.start()

        def registered() -> bool:
            if not self.worker.alive():
                raise ServiceExited(f"the Procrastinate worker exited:\n{self.worker.log_tail()}")
            return bool(self._sql("SELECT 1 FROM procrastinate_workers"))

        wait_until(registered, timeout, what="the Procrastinate worker to register")

    def stop(self) -> None:
        try:
            if self._app is not None:
                self._run(self._app.close_async())
        finally:
            self._loop.close()
            self.worker.stop()
            pg_counters.drop(DATABASE)
            shutil.rmtree(self.stamps, ignore_errors=True)

    def trigger_noops(self, n: int, batch_size: int) -> None:
        from procrastinate_app import noop

        while n:
            self._run(noop.batch_defer_async(*[{}] * min(batch_size, n)))
            n -= min(batch_size, n)

    def trigger_noop(self) -> None:
        from procrastinate_app import noop

        self._run(noop.defer_async())

    def pending(self) -> bool:
        return bool(
            self._sql("SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') LIMIT 1")
        )

    def noop_runs(self) -> list[tuple[bool, float | None, float | None]]:
        rows = self._sql(
            "SELECT j.status = 'succeeded', "
            "extract(epoch FROM (SELECT min(at) FROM procrastinate_events e "
            "WHERE e.job_id = j.id AND e.type = 'started')), "
            "extract(epoch FROM (SELECT max(at) FROM procrastinate_events e "
            "WHERE e.job_id = j.id AND e.type = 'succeeded')) "
            "FROM procrastinate_jobs j WHERE j.task_name = 'noop'"
        )
        return [
            (bool(ok), float(s) if s is not None else None, float(c) if c is not None else None)
            for ok, s, c in rows
        ]

    def stamp(self, poll: float, timeout: float) -> tuple[float, float]:
        from procrastinate_app import stamp

        job_id = self._run(stamp.defer_async())
        returned = time.time()
        deadline = time.monotonic() + timeout
        manager = self._app.job_manager
        while True:
            time.sleep(poll)
            status = self._run(manager.get_job_status_async(job_id)).value
            if status not in ("todo", "doing"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not end within {timeout:g}s")
        if status != "succeeded":
            raise RuntimeError(f"stamp job {job_id} ended {status}")
        return returned, float((self.stamps / str(job_id)).read_text())
