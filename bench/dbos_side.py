"""The DBOS side of the durable workloads: for each workload, a fresh system database (a
Postgres database dropped and created again, or a new SQLite file) and a fresh process running
dbos_app.py, whose memory and CPU are sampled from outside while it runs the workload.

DBOS is a library, not a platform: the workflows run inside the application process that
launched DBOS, and that process starts them. So the DBOS process here is both "the platform"
and "the client"; its figures count both.

The harness drops and creates the Postgres database of BENCH_DBOS_PG_URL (default
postgresql://postgres@127.0.0.1:5432/bench_dbos) before each workload and drops it after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from processes import Service, ServiceExited, Usage, wait_until

BENCH_DIR = Path(__file__).resolve().parent
PG_URL = os.environ.get("BENCH_DBOS_PG_URL", "postgresql://postgres@127.0.0.1:5432/bench_dbos")
DEFAULT_POLL = 1.0  # DBOS's default queue polling interval and get_result polling interval (s)


def _admin(url: str) -> tuple[str, str]:
    """The maintenance database's URL (same server, database `postgres`) and the database name."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"BENCH_DBOS_PG_URL must name a plain database, got {url!r}")
    return urlunsplit(parts._replace(path="/postgres")), name


def _recreate(url: str, drop_only: bool = False) -> None:
    import psycopg  # installed with dbos

    admin, name = _admin(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


class SystemDatabase:
    """A fresh DBOS system database: `postgres` (BENCH_DBOS_PG_URL) or `sqlite` (a temp file)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._tmp: str | None = None

    def __enter__(self) -> str:
        if self.backend == "postgres":
            _recreate(PG_URL)
            return PG_URL
        self._tmp = tempfile.mkdtemp(prefix="dbos-bench-")
        return f"sqlite:///{self._tmp}/dbos.sqlite"

    def __exit__(self, *exc: object) -> None:
        if self.backend == "postgres":
            with contextlib.suppress(Exception):
                _recreate(PG_URL, drop_only=True)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def server_version(backend: str) -> str:
    if backend == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    try:
        import psycopg

        admin, _ = _admin(PG_URL)
        with psycopg.connect(admin, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"
    except Exception as exc:
        return f"PostgreSQL ? ({exc})"


def run_workload(
    backend: str,
    workload: str,
    log_dir: Path,
    *,
    n: int,
    seconds: float = 10.0,
    poll: float = DEFAULT_POLL,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Start dbos_app.py for one workload on a fresh database, wait until DBOS is launched,
    measure from `go` to its result, and stop it (always)."""
    name = f"dbos-{backend}-{workload}" + (f"-poll{poll:g}" if workload == "limited" else "")
    with (
        SystemDatabase(backend) as url,
        tempfile.TemporaryDirectory(prefix="dbos-handshake-") as tmp,
    ):
        handshake = Path(tmp)
        argv = [
            sys.executable,
            str(BENCH_DIR / "dbos_app.py"),
            "--workload",
            workload,
            "--database",
            url,
            "--dir",
            str(handshake),
            "--n",
            str(n),
            "--seconds",
            str(seconds),
            "--poll",
            str(poll),
            "--timeout",
            str(timeout),
        ]
        service = Service("dbos", argv, cwd=BENCH_DIR, log_path=log_dir / f"{name}.log")
        try:
            service.start()

            def ready() -> bool:
                if not service.alive():
                    raise ServiceExited(f"the DBOS process exited:\n{service.log_tail()}")
                return (handshake / "ready").exists()

            wait_until(ready, 120, interval=0.05, what="DBOS to launch")
            time.sleep(0.5)  # let the launch settle, as the others are measured from idle
            with Usage(service) as usage:
                (handshake / "go").touch()

                def result() -> dict[str, Any] | None:
                    path = handshake / "result.json"
                    if path.exists():
                        data: dict[str, Any] = json.loads(path.read_text())
                        return data
                    if not service.alive():
                        raise ServiceExited(f"the DBOS process exited:\n{service.log_tail()}")
                    return None

                raw = wait_until(
                    result, timeout + 30, interval=0.02, what=f"DBOS to finish {workload}"
                )
            with contextlib.suppress(Exception):
                assert service.proc is not None
                service.proc.wait(30)  # DBOS.destroy() then exit
        finally:
            service.stop()
    return {**raw, **usage.as_dict(), "process": "python bench/dbos_app.py (DBOS launched in it)"}


def _children_done(backend: str, children: list[dict[str, Any]]) -> list[float]:
    """When the children completed, as DBOS recorded it: milliseconds on Postgres; on SQLite
    whole seconds (too coarse to time anything here: left out)."""
    if backend != "postgres":
        return []
    return [c["completed_at"] for c in children if c.get("completed_at") is not None]


def fanout(backend: str, log_dir: Path, n: int, timeout: float = 300.0) -> dict[str, Any]:
    """A workflow starting n no-op child workflows and waiting for each. Clock: time.time()
    before start_workflow_async(parent) to its result returned in the same process (the handle
    of an in-process workflow awaits it: no polling)."""
    raw = run_workload(backend, "fanout", log_dir, n=n, timeout=timeout)
    t0 = raw["t0"]
    done = _children_done(backend, raw["children"])
    return {
        "resume_after_last_child": (raw["seen"] - max(done)) if done else None,
        "status": raw["parent"]["status"],
        "output": raw["output"],
        "t0": t0,
        "seconds": raw["seen"] - t0,
        "observed_seconds": raw["seen"] - t0,
        "children": len(raw["children"]),
        "children_ok": sum(1 for c in raw["children"] if c["status"] == "SUCCESS"),
        "children_last_end": (max(done) - t0) if done else None,
        **{k: raw[k] for k in raw if k not in ("children", "parent", "output", "t0", "seen")},
    }


def limited(
    backend: str,
    log_dir: Path,
    n: int,
    limit: int,
    poll: float = DEFAULT_POLL,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """A workflow enqueuing n children (asyncio.sleep(0.1)) on a queue registered with
    global_concurrency=5 and polling_interval_sec=poll, waiting for each with
    get_result(polling_interval_sec=poll). Peak concurrency from the children's own stamps
    and from the recorded dequeued_at/completed_at (milliseconds on Postgres; whole seconds on
    SQLite, too coarse to use)."""
    from workloads import interval_figures

    raw = run_workload(backend, "limited", log_dir, n=n, poll=poll, timeout=timeout)
    t0 = raw["t0"]
    children = raw["children"]
    own = [
        (c["output"]["started"], c["output"]["ended"])
        for c in children
        if isinstance(c.get("output"), dict)
    ]
    out = {
        "status": raw["parent"]["status"],
        "output": raw["output"],
        "t0": t0,
        "poll": poll,
        "seconds": raw["seen"] - t0,
        "observed_seconds": raw["seen"] - t0,
        "children": len(children),
        "children_ok": sum(1 for c in children if c["status"] == "SUCCESS"),
        **interval_figures("own", own, t0, limit),
        **{k: raw[k] for k in raw if k not in ("children", "parent", "output", "t0", "seen")},
    }
    if backend == "postgres":
        recorded = [
            (c["dequeued_at"], c["completed_at"])
            for c in children
            if c.get("dequeued_at") is not None and c.get("completed_at") is not None
        ]
        out.update(interval_figures("recorded", recorded, t0, limit))
    return out


def durable_sleep(
    backend: str, log_dir: Path, n: int, seconds: float, timeout: float = 300.0
) -> dict[str, Any]:
    """n workflows each `await DBOS.sleep_async(seconds)` (durable: the wake-up time is a
    journaled step; the workflow then sleeps in the process, a coroutine each). Clock:
    time.time() before the first start to the last result returned."""
    raw = run_workload(backend, "sleep", log_dir, n=n, seconds=seconds, timeout=timeout)
    t0 = raw["t0"]
    done = _children_done(backend, raw["children"])
    return {
        "t0": t0,
        "runs": len(raw["children"]),
        "children_ok": sum(1 for c in raw["children"] if c["status"] == "SUCCESS"),
        "trigger_seconds": raw["triggered"] - t0,
        "seconds": raw["seen"] - t0,
        "observed_seconds": raw["seen"] - t0,
        "first_end": (min(done) - t0) if done else None,
        **{k: raw[k] for k in raw if k not in ("children", "t0", "seen", "triggered")},
    }
