"""The Conveyor side of the schedules benchmark (bench/schedules.py): one `conveyor server` over
a fresh database, the scheduled task `tick` registered by a worker that is then stopped, N
schedules made through the API, and the runs they make watched QUEUED from a connection of
this process to the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pg_counters
import psutil
from processes import Service, ServiceExited, free_port, project_key, wait_until
from schedules_window import (
    CPU_BEFORE,
    CpuMeter,
    Minutes,
    clock,
    figures,
    lag_summary,
    sleep_until,
)

from conveyor import AsyncClient, Client
from conveyor.engine.schedules import LOOKAHEAD

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR / "projects" / "schedules"
PG_DATABASE = "bench_schedules"
DELAYED_EVERY = 20  # polls between two counts of the runs made ahead (DELAYED)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class RunsReader:
    """This process's own connection to the server's database: the runs of `tick`, read with
    one statement per snapshot (autocommit), as any other reader of the database would."""

    COUNT = "SELECT count(*) FROM runs WHERE status = 'QUEUED' AND available_at >= ?"
    DELAYED = "SELECT count(*) FROM runs WHERE status = 'DELAYED' AND available_at >= ?"
    QUEUED = "SELECT id, available_at FROM runs WHERE status = 'QUEUED' AND available_at >= ?"
    ALL = (
        "SELECT id, status, payload, updated_at FROM runs WHERE task_id = 'tick' "
        "AND available_at >= ?"
    )

    def __init__(self, database: str, target: str) -> None:
        self.postgres = database == "postgres"
        self.conn: Any
        if self.postgres:
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)
            row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
            self.backend_pid = int(row[0])
        else:
            self.conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self.backend_pid = 0

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def count(self, since: float) -> int:
        return int(self.conn.execute(self._sql(self.COUNT), (since,)).fetchone()[0])

    def delayed(self, since: float) -> int:
        return int(self.conn.execute(self._sql(self.DELAYED), (since,)).fetchone()[0])

    def queued(self, since: float) -> list[tuple[str, float]]:
        return list(self.conn.execute(self._sql(self.QUEUED), (since,)).fetchall())

    def runs(self, since: float) -> list[tuple[str, str, Any, float]]:
        return list(self.conn.execute(self._sql(self.ALL), (since,)).fetchall())

    def server_backends(self) -> list[psutil.Process]:
        """The PostgreSQL backends serving the database, but this reader's (PostgreSQL only)."""
        if not self.postgres:
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (PG_DATABASE,),
        ).fetchall()
        found = []
        for (pid,) in rows:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found

    def own_backend(self) -> list[psutil.Process]:
        if not self.postgres:
            return []
        with contextlib.suppress(psutil.Error):
            return [psutil.Process(self.backend_pid)]
        return []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class ConveyorSchedules:
    """One `conveyor server` over a fresh database: a SQLite file in a temporary folder, or the
    PostgreSQL database bench_schedules (dropped and created). The task `tick` is defined by a
    worker of projects/schedules that registers and is then stopped, so the runs the schedules
    make wait QUEUED; the schedules are made through the API with the prod key."""

    def __init__(self, database: str, log_dir: Path) -> None:
        self.database = database
        self.log_dir = log_dir
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self._home = Path(tempfile.mkdtemp(prefix="conveyor-bench-schedules-"))
        if database == "postgres":
            self.target = pg_counters.database_url(PG_DATABASE)
        else:
            self.target = str(self._home / "conveyor.db")
        self.server = Service(
            f"conveyor-server-{database}",
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "server",
                "--database-url",
                self.target,
                "--port",
                str(self.port),
            ],
            cwd=self._home,
            log_path=log_dir / f"conveyor-server-{database}.log",
            # making 10,000 schedules is set-up, not what is measured: no per-key rate limit
            env=dict(os.environ, CONVEYOR_RATE_LIMIT="off"),
        )
        self.secret = ""
        self.note = (
            f"conveyor server --database-url {self.target} (CONVEYOR_RATE_LIMIT=off), prod key; "
            "task `tick` registered by a conveyor worker of projects/schedules, then stopped"
        )

    def start(self, timeout: float = 90.0) -> None:
        if self.database == "postgres":
            pg_counters.recreate(PG_DATABASE)
        self.server.start()

        self.secret = project_key(self.server, self.api_url, "bench", timeout)
        worker = Service(
            f"conveyor-worker-{self.database}",
            [
                sys.executable,
                "-m",
                "conveyor.cli.main",
                "worker",
                "--executors",
                "1",
                "--capacity",
                "1",
                "--quiet",
            ],
            cwd=PROJECT,
            log_path=self.log_dir / f"conveyor-worker-{self.database}.log",
            env=dict(os.environ, CONVEYOR_API_URL=self.api_url, CONVEYOR_SECRET_KEY=self.secret),
        )
        worker.start()
        try:
            with Client(api_url=self.api_url, secret_key=self.secret, timeout=30) as client:

                def registered() -> bool:
                    if not worker.alive():
                        raise ServiceExited(f"conveyor worker exited:\n{worker.log_tail()}")
                    return "tick" in {t.id for t in client.tasks.list()}

                wait_until(registered, timeout, what="conveyor worker to register the task tick")
        finally:
            worker.stop()

    def create(self, count: int, concurrency: int) -> list[str]:
        """Make `count` schedules of every minute, `concurrency` requests at a time; their ids."""

        async def make() -> list[str]:
            async with AsyncClient(
                api_url=self.api_url, secret_key=self.secret, timeout=120
            ) as client:
                gate = asyncio.Semaphore(concurrency)

                async def one(index: int) -> str:
                    async with gate:
                        made = await client.schedules.create(
                            task="tick", cron="* * * * *", external_id=f"bench-{index}"
                        )
                        return made.id

                return list(await asyncio.gather(*(one(i) for i in range(count))))

        return asyncio.run(make())

    def stop(self) -> None:
        self.server.stop()
        if self.database == "postgres":
            pg_counters.drop(PG_DATABASE)
        shutil.rmtree(self._home, ignore_errors=True)
        shutil.rmtree(PROJECT / ".conveyor", ignore_errors=True)


def watch_runs(
    reader: RunsReader, minutes: Minutes, per_minute: int, poll: float, meter: CpuMeter
) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """Poll for runs that became QUEUED from the window's start until every observed minute
    has `per_minute` of them (and the CPU window has closed) or until its give-up time: when
    each run was first seen, the CPU used over the window, and how the polling went.

    The cheap poll counts QUEUED runs available from the earliest minute not yet complete (a
    range of the (status, available_at) index, empty between fires); only when the count
    changes are the ids read. A run is stamped with the time that count returned when the read
    found as many rows as were counted (the same rows: nothing leaves QUEUED), else with the
    time the read returned: an upper bound of when it was queued, by at most one poll period
    (plus the read, in the second case). Every DELAYED_EVERY polls the runs waiting DELAYED
    are counted too: when the runs made ahead were committed (`made_ahead`)."""
    seen: dict[str, float] = {}
    delayed: list[tuple[float, int]] = []  # (time, DELAYED runs) at each change
    found: Counter[float] = Counter()
    cursor = minutes.times[0]
    last: int | None = None
    polls = reads = 0
    read_seconds: list[float] = []
    cpu: dict[str, float] | None = None
    sleep_until(minutes.start)
    meter.start()
    while True:
        now = time.time()
        if cpu is None and now >= minutes.end:
            cpu = meter.stop()
        done = cursor > minutes.times[-1]
        if cpu is not None and (done or now >= minutes.give_up):
            break
        if not done:
            if polls % DELAYED_EVERY == 0:
                waiting = reader.delayed(cursor)
                if not delayed or delayed[-1][1] != waiting:
                    delayed.append((time.time(), waiting))
            count = reader.count(cursor)
            counted = time.time()
            polls += 1
            if count != last:
                rows = reader.queued(cursor)
                at = time.time()
                reads += 1
                read_seconds.append(at - counted)
                # nothing leaves QUEUED here, so a read of as many rows as were counted read
                # the rows counted: they were queued by the time the count returned
                if len(rows) == count:
                    at = counted
                for run_id, available_at in rows:
                    if run_id not in seen:
                        seen[run_id] = at
                        found[available_at // 60 * 60] += 1
                last = count
                while cursor <= minutes.times[-1] and found[cursor] >= per_minute:
                    cursor += 60
                    last = None
        time.sleep(poll)
    assert cpu is not None
    polling = {
        "polls": polls,
        "reads": reads,
        "read_ms_max": max(read_seconds, default=0.0) * 1000,
        "made_ahead": made_ahead(delayed, minutes),
    }
    return seen, cpu, polling


def made_ahead(delayed: list[tuple[float, int]], minutes: Minutes) -> dict[str, list[float]]:
    """Per observed minute, when (seconds from the minute) the first runs made ahead for it
    were seen DELAYED and when their count stopped growing: how long making them took (until
    the next minute's make-ahead begins)."""
    spans: dict[str, list[float]] = {}
    for minute in minutes.times:
        around = [
            (at, n) for at, n in delayed if minute - LOOKAHEAD - 1 <= at < minute + 59 - LOOKAHEAD
        ]
        growing = [(at, n) for at, n in around if n > 0]
        if growing:
            top = max(n for _, n in growing)
            done = next(at for at, n in growing if n == top)
            spans[clock(minute)] = [growing[0][0] - minute, done - minute]
    return spans


def run_conveyor(database: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    system = ConveyorSchedules(database, log_dir)
    reader: RunsReader | None = None
    try:
        system.start()
        began = time.time()
        schedule_ids = system.create(args.schedules, args.concurrency)
        created = time.time()
        print(
            f"conveyor ({database}): {len(schedule_ids):,} schedules made in "
            f"{created - began:.1f} s",
            flush=True,
        )
        minutes = Minutes.first_after(created + CPU_BEFORE, args.minutes)
        reader = RunsReader(database, system.target)
        groups = {
            "system": system.server.processes,
            "observer": lambda: [psutil.Process(), *reader.own_backend()],
        }
        if database == "postgres":
            groups["database"] = reader.server_backends
        meter = CpuMeter(groups)
        print(
            f"conveyor ({database}): observing {clock(minutes.times[0])} to "
            f"{clock(minutes.times[-1])}",
            flush=True,
        )
        seen, cpu, polling = watch_runs(reader, minutes, args.schedules, args.poll_ms / 1000, meter)
        runs = reader.runs(minutes.times[0] - 2 * LOOKAHEAD)
        if not system.server.alive():
            raise ServiceExited(f"conveyor server exited:\n{system.server.log_tail()}")
        result = conveyor_figures(runs, seen, set(schedule_ids), minutes, cpu)
        result.update(
            database=database,
            launch=system.note,
            created_in=created - began,
            polling=polling,
            rss=sum(p.memory_info().rss for p in system.server.processes()),
        )
        return result
    finally:
        if reader is not None:
            reader.close()
        system.stop()


def conveyor_figures(
    runs: list[tuple[str, str, Any, float]],
    seen: dict[str, float],
    schedule_ids: set[str],
    minutes: Minutes,
    cpu: dict[str, float],
) -> dict[str, Any]:
    """Lag, completeness and CPU from the runs read back (their payload names the schedule and
    the minute) and when each was first seen QUEUED."""
    observed = set(minutes.times)
    by_fire: dict[tuple[str, float], list[str]] = defaultdict(list)
    lags: list[float] = []
    recorded: list[float] = []
    unseen = 0
    for run_id, status, payload, updated_at in runs:
        body = json.loads(payload) if isinstance(payload, str) else payload
        fire_at = _epoch(body["timestamp"])
        if fire_at not in observed:
            continue
        by_fire[(body["schedule_id"], fire_at)].append(run_id)
        if status == "QUEUED":
            recorded.append(updated_at - fire_at)
        if run_id in seen:
            lags.append(seen[run_id] - fire_at)
        else:
            unseen += 1
    expected = {(s, t) for s in schedule_ids for t in minutes.times}
    in_window = sum(1 for at in seen.values() if minutes.start <= at < minutes.end)
    return figures(
        lags=lags,
        lags_observed=lags,
        fires=len(by_fire.keys() & expected),
        expected=len(expected),
        missing=len(expected - by_fire.keys()),
        doubled=sum(len(ids) - 1 for ids in by_fire.values() if len(ids) > 1),
        unseen=unseen,
        in_window=in_window,
        cpu=cpu,
        minutes=minutes,
        extra={
            "recorded_lag_ms": lag_summary(recorded),
            "unknown_schedule": len(by_fire.keys() - expected),
        },
    )
