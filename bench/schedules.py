"""Cron schedules at scale: N schedules firing every minute on one `conveyor server` (on SQLite,
then on PostgreSQL), and Celery beat firing the same N crontab entries, in the same run.

    .venv/bin/python bench/schedules.py [--schedules 10000] [--minutes 3]
                                        [--databases sqlite,postgres] [--peer celery|none]
                                        [--poll-ms 5] [--json PATH] [--keep-logs]

Fire lag is the time from a fire's scheduled minute to when its run (Conveyor) or its message
(Celery) is first seen waiting to be taken, watched from outside the system: a connection of
this process polls the database for runs QUEUED, or Redis for the length of the queue, every
--poll-ms. Nothing consumes them, so each stays where it was seen. CPU per fire is the CPU
seconds of the server (of beat) over the observed minutes divided by the fires queued in them.
Each system runs alone, on fresh state, and is stopped before the next starts: the PostgreSQL
database bench_schedules is dropped and created (BENCH_PG_URL names the server), Redis database
14 is emptied (BENCH_BEAT_REDIS_URL to use another). Figures and findings: bench/RESULTS.md,
"Schedules".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import pg_counters  # noqa: E402
from processes import Service, ServiceExited, free_port, wait_until  # noqa: E402
from report import percentile  # noqa: E402
from run import conveyor_tree, versions  # noqa: E402

from conveyor import AsyncClient, Client  # noqa: E402
from conveyor.engine.schedules import LOOKAHEAD  # noqa: E402

PROJECT = BENCH_DIR / "projects" / "schedules"
PG_DATABASE = "bench_schedules"
REDIS_URL = os.environ.get("BENCH_BEAT_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = "celery"  # the Redis list beat's messages wait in
CPU_BEFORE = LOOKAHEAD + 5  # the CPU window opens this long before the first observed minute
GIVE_UP = 59.0  # a fire not seen this long after its minute is missing
BEAT_WARM_UP = 5.0  # beat's first minute is its start-up: observe from the minute after it
BEAT_IDLE = 2.0  # after the window, beat is done once its queue stops growing this long
DELAYED_EVERY = 20  # polls between two counts of the runs made ahead (DELAYED)


@dataclass(frozen=True)
class Minutes:
    """The observed fire times (whole minutes, epoch seconds). CPU is counted over
    [start, end): as many whole minutes, each holding one minute's work (Conveyor makes the runs
    LOOKAHEAD seconds ahead, queues them on the minute; beat sends on the minute). A fire not
    seen by `give_up` is missing."""

    times: tuple[float, ...]

    @classmethod
    def first_after(cls, moment: float, count: int) -> Minutes:
        first = math.ceil(moment / 60) * 60.0
        return cls(tuple(first + 60 * i for i in range(count)))

    @property
    def start(self) -> float:
        return self.times[0] - CPU_BEFORE

    @property
    def end(self) -> float:
        return self.times[-1] + 60 - CPU_BEFORE

    @property
    def give_up(self) -> float:
        return self.times[-1] + GIVE_UP


class CpuMeter:
    """CPU seconds (user + system) of named groups of processes between two reads, per pid (a
    process born in between counts from its birth), plus the whole machine's, and Redis's own
    (INFO) when given a client."""

    def __init__(
        self,
        groups: dict[str, Callable[[], list[psutil.Process]]],
        redis_client: redis.Redis | None = None,
    ) -> None:
        self.groups = groups
        self.redis = redis_client
        self._first: dict[str, dict[int, float]] | None = None
        self._machine = self._redis = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        found: dict[str, dict[int, float]] = {}
        for name, processes in self.groups.items():
            found[name] = {}
            for proc in processes():
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    found[name][proc.pid] = times.user + times.system
        return found

    def start(self) -> None:
        self._first = self._read()
        self._machine = _busy()
        self._redis = _redis_cpu(self.redis)

    def stop(self) -> dict[str, float]:
        assert self._first is not None, "start() first"
        last = self._read()
        used = {
            name: sum(cpu - self._first[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in last.items()
        }
        used["machine"] = _busy() - self._machine
        if self.redis is not None:
            used["redis"] = _redis_cpu(self.redis) - self._redis
        return used


def _busy() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system)


def _redis_cpu(client: redis.Redis | None) -> float:
    if client is None:
        return 0.0
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"] + info["used_cpu_sys"])


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _sleep_until(moment: float) -> None:
    left = moment - time.time()
    if left > 0:
        time.sleep(left)


def lag_summary(lags: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p99, max and min of lags given in seconds."""
    ms = [lag * 1000 for lag in lags]
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "max": max(ms, default=float("nan")),
        "min": min(ms, default=float("nan")),
    }


# -- Conveyor --------------------------------------------------------------------------------


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

        def admin_token() -> str | None:
            if not self.server.alive():
                raise ServiceExited(f"conveyor server exited:\n{self.server.log_tail()}")
            found = re.search(
                r"cv_pat_[0-9A-Za-z_]+", self.server.log_path.read_text(errors="replace")
            )
            return found.group(0) if found else None

        token = wait_until(admin_token, timeout, what="conveyor server to print its admin token")

        def key() -> str:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=self.api_url, headers=headers, timeout=30) as http:
                http.post("/api/v1/projects", json={"name": "bench"}).raise_for_status()
                reply = http.get("/api/v1/projects/bench/environments/prod/key")
                reply.raise_for_status()
                return str(reply.json()["secret_key"])

        self.secret = wait_until(key, timeout, what="conveyor server to make the project")
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
    _sleep_until(minutes.start)
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
            spans[_clock(minute)] = [growing[0][0] - minute, done - minute]
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
            f"conveyor ({database}): observing {_clock(minutes.times[0])} to "
            f"{_clock(minutes.times[-1])}",
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


def figures(
    *,
    lags: list[float],
    lags_observed: list[float],
    fires: int,
    expected: int,
    missing: int,
    doubled: int,
    unseen: int,
    in_window: int,
    cpu: dict[str, float],
    minutes: Minutes,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One system's figures, the same for both: lags in ms, completeness, CPU per fire (over
    the fires queued within the CPU window) and the CPU other processes took meanwhile."""
    per_fire = {name: used / in_window if in_window else None for name, used in cpu.items()}
    ours = sum(used for name, used in cpu.items() if name != "machine")
    return {
        "cpu_other_cores": max(0.0, cpu["machine"] - ours) / (minutes.end - minutes.start),
        "lag_ms": lag_summary(lags),
        "lag_observed_minutes_ms": lag_summary(lags_observed),
        "fires": fires,
        "expected": expected,
        "missing": missing,
        "doubled": doubled,
        "unseen": unseen,
        "queued_in_window": in_window,
        "cpu": cpu,
        "cpu_per_fire_ms": {k: v * 1000 if v is not None else None for k, v in per_fire.items()},
        "minutes": [_clock(t) for t in minutes.times],
        "window": [minutes.start, minutes.end],
        **extra,
    }


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(moment))


# -- Celery beat -----------------------------------------------------------------------------


class Beat:
    """`celery -A beat_app beat` with N crontab entries, its schedule file in a temporary folder,
    on an emptied Redis database (BENCH_BEAT_REDIS_URL, database 14 by default), no worker."""

    def __init__(self, count: int, log_dir: Path) -> None:
        self._home = Path(tempfile.mkdtemp(prefix="celery-bench-beat-"))
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "beat_app",
            "beat",
            "--schedule",
            str(self._home / "celerybeat-schedule"),
            "--pidfile",
            "",
            "--loglevel",
            "WARNING",
        ]
        env = dict(
            os.environ,
            BENCH_BEAT_REDIS_URL=REDIS_URL,
            BENCH_BEAT_SCHEDULES=str(count),
        )
        self.service = Service(
            "celery-beat", argv, cwd=BENCH_DIR, log_path=log_dir / "celery-beat.log", env=env
        )
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.note = (
            f"celery -A beat_app beat ({count:,} entries crontab(minute='*'), the default "
            f"persistent scheduler, no worker) on {REDIS_URL}"
        )

    def start(self) -> float:
        self.redis.flushdb()
        started = time.time()
        self.service.start()
        return started

    def stop(self) -> None:
        self.service.stop()
        self.redis.flushdb()
        self.redis.close()
        shutil.rmtree(self._home, ignore_errors=True)


def run_beat(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    beat = Beat(args.schedules, log_dir)
    poll = args.poll_ms / 1000
    timeline: list[tuple[float, int]] = []  # (time, queue length) at each change
    polls = 0

    def check() -> int:
        nonlocal polls
        length = int(beat.redis.llen(QUEUE))
        polls += 1
        if not timeline or length != timeline[-1][1]:
            timeline.append((time.time(), length))
        return length

    try:
        started = beat.start()
        deadline = time.time() + 180
        while check() == 0:
            if not beat.service.alive():
                raise ServiceExited(f"celery beat exited:\n{beat.service.log_tail()}")
            if time.time() > deadline:
                raise TimeoutError("celery beat sent nothing within 180 s")
            time.sleep(poll)
        first_at = timeline[-1][0]  # the first change: from empty to its first message(s)
        print(f"celery beat: first message {first_at - started:.1f} s after start", flush=True)
        minutes = Minutes.first_after(
            max(first_at + BEAT_WARM_UP, time.time() + CPU_BEFORE), args.minutes
        )
        print(
            f"celery beat: observing {_clock(minutes.times[0])} to {_clock(minutes.times[-1])}",
            flush=True,
        )
        while time.time() < minutes.start:
            check()
            time.sleep(poll)
        meter = CpuMeter(
            {"system": beat.service.processes, "observer": lambda: [psutil.Process()]},
            redis_client=beat.redis,
        )
        meter.start()
        at_start = timeline[-1][1]
        cpu: dict[str, float] | None = None
        while True:
            length = check()
            now = time.time()
            if cpu is None and now >= minutes.end:
                cpu = meter.stop()
            if cpu is not None:
                quiet = now - timeline[-1][0] >= BEAT_IDLE
                if now >= minutes.give_up or (
                    quiet and length - at_start >= args.schedules * args.minutes
                ):
                    break
            time.sleep(poll)
        if not beat.service.alive():
            raise ServiceExited(f"celery beat exited:\n{beat.service.log_tail()}")
        rss = sum(p.memory_info().rss for p in beat.service.processes())
        beat.service.stop()
        messages: list[bytes] = list(beat.redis.lrange(QUEUE, 0, -1))  # type: ignore[arg-type]
        messages.reverse()  # LPUSHed: oldest last
        first_minute = math.floor((first_at + 1) / 60) * 60.0  # a second early is still it
        result = beat_figures(messages, timeline, first_minute, args.schedules, minutes, cpu)
        result.update(
            launch=beat.note,
            polling={"polls": polls, "changes": len(timeline)},
            first_message_after=first_at - started,
            rss=rss,
        )
        return result
    finally:
        beat.stop()


def beat_figures(
    messages: list[bytes],
    timeline: list[tuple[float, int]],
    first_minute: float,
    count: int,
    minutes: Minutes,
    cpu: dict[str, float],
) -> dict[str, Any]:
    """Lag, completeness and CPU of beat's messages. A message's arrival is the first poll
    that saw the queue long enough to hold it. Its minute is the one beat sent it for: an entry
    is due at the first minute after it last ran (crontab's rule, beat sets `last_run_at` as it
    sends), so an entry's first message is for beat's first minute (the one the first message
    of all was sent for: every entry was made as beat started) and each next one for the first
    minute after the previous one arrived. A minute an entry skipped
    (beat reached it only after the next minute had begun) is missing.

    `lag_ms` is over every message queued while observed (from the window's start), whatever
    minute it was for: a beat more than a minute behind sends for earlier minutes, and the
    observed minutes' own fires may never come (`lag_observed_minutes_ms`, `missing`)."""
    lengths = [length for _, length in timeline]
    last_sent: dict[int, float] = defaultdict(lambda: first_minute - 30)
    by_fire: dict[tuple[int, float], int] = Counter()
    lags: list[float] = []  # every message queued while observed, whatever its minute
    lags_observed: list[float] = []  # those of the observed minutes
    sent_for: Counter[float] = Counter()
    observed = set(minutes.times)
    in_window = 0
    for position, raw in enumerate(messages[: lengths[-1]]):
        at = timeline[bisect.bisect_right(lengths, position)][0]
        envelope = json.loads(raw)
        index = int(json.loads(base64.b64decode(envelope["body"]))[0][0])
        minute = math.floor(last_sent[index] / 60) * 60.0 + 60
        last_sent[index] = at
        if minutes.start <= at < minutes.end:
            in_window += 1
        if at >= minutes.start:
            lags.append(at - minute)
            sent_for[minute] += 1
        if minute in observed:
            by_fire[(index, minute)] += 1
            lags_observed.append(at - minute)
    expected = count * len(minutes.times)
    return figures(
        lags=lags,
        lags_observed=lags_observed,
        fires=len(by_fire),
        expected=expected,
        missing=expected - len(by_fire),
        doubled=sum(n - 1 for n in by_fire.values() if n > 1),
        unseen=0,
        in_window=in_window,
        cpu=cpu,
        minutes=minutes,
        extra={
            "messages": len(messages),
            "queued_while_observed_for": {_clock(t): n for t, n in sorted(sent_for.items())},
        },
    )


# -- the report ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return ""
    ratio = a / b
    return f"{ratio:.2f}x" if abs(ratio) >= 0.1 else f"{ratio:.2g}x"


def table(results: dict[str, Any], count: int) -> str:
    systems = [(f"Conveyor, {db}", r) for db, r in results["conveyor"].items()]
    beat = results.get("celery")
    if beat is not None:
        systems.append(("Celery beat", beat))
    head = [f"{count:,} schedules, every minute", *(name for name, _ in systems)]
    ratios = [name for name, _ in systems[:-1]] if beat is not None else []
    head += [f"{name.split(', ')[1]} / beat" for name in ratios]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def row(
        label: str,
        value: Callable[[dict[str, Any]], float | None],
        ratio: bool,
        shown: Callable[[float | None], str] = _ms,
    ) -> None:
        cells = [shown(value(r)) for _, r in systems]
        if ratios:
            peer = value(beat) if beat is not None else None
            cells += [_ratio(value(r), peer) if ratio else "" for _, r in systems[:-1]]
        lines.append("| " + " | ".join([label, *cells]) + " |")

    def lag(q: str) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: r["lag_ms"][q]

    for q in ("p50", "p99", "max"):
        row(f"fire lag {q} (ms)", lag(q), True)
    lines.append(
        "| fires queued while observed | "
        + " | ".join(f"{r['lag_ms']['n']:,}" for _, r in systems)
        + " |"
        + " |" * len(ratios)
    )
    lines.append(
        "| fires of the observed minutes queued / expected (missing, doubled) | "
        + " | ".join(
            f"{r['fires']:,} / {r['expected']:,} ({r['missing']:,}, {r['doubled']:,})"
            for _, r in systems
        )
        + " |"
        + " |" * len(ratios)
    )
    row(
        "CPU per fire, server / beat process (ms)",
        lambda r: r["cpu_per_fire_ms"]["system"],
        True,
    )
    row(
        "CPU per fire, its database (PostgreSQL backends / Redis) (ms)",
        lambda r: r["cpu_per_fire_ms"].get("database", r["cpu_per_fire_ms"].get("redis")),
        False,
    )
    row(
        "CPU of other processes on the machine meanwhile (noise, cores)",
        lambda r: r["cpu_other_cores"],
        False,
        lambda v: "-" if v is None else f"{v:.2f}",
    )
    lines.append(
        "| p99 lag under 1 s | "
        + " | ".join(
            "met" if r["lag_ms"]["p99"] < 1000 and not r["missing"] else "**not met**"
            for _, r in systems
        )
        + " |"
        + " |" * len(ratios)
    )
    return "\n".join(lines)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=3, help="minutes observed per system")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--peer", choices=("celery", "none"), default="celery")
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="schedule-creating requests at once"
    )
    parser.add_argument("--json", help="write every measurement to this file")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    # SIGTERM stops a run like Ctrl-C does, stopping what it started (a job started in the
    # background of a script ignores SIGINT)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    databases = [d for d in args.databases.split(",") if d]
    for database in databases:
        if database not in ("sqlite", "postgres"):
            parser.error(f"--databases: sqlite or postgres, not {database!r}")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    tree_before = conveyor_tree()
    log_dir = Path(tempfile.mkdtemp(prefix="conveyor-bench-schedules-logs-"))
    results: dict[str, Any] = {"conveyor": {}, "celery": None}
    failed = False
    for database in databases:
        try:
            results["conveyor"][database] = run_conveyor(database, args, log_dir)
        except Exception:
            failed = True
            print(f"conveyor ({database}): FAILED (logs in {log_dir})", file=sys.stderr)
            traceback.print_exc()
    if args.peer == "celery":
        try:
            results["celery"] = run_beat(args, log_dir)
        except Exception:
            failed = True
            print(f"celery beat: FAILED (logs in {log_dir})", file=sys.stderr)
            traceback.print_exc()
    command = "python bench/schedules.py " + " ".join(argv if argv is not None else sys.argv[1:])
    found = versions()
    tree_after = conveyor_tree()
    tree_note = (
        f"conveyor tree: newest file {tree_after[1]}, unchanged during the run"
        if tree_after == tree_before
        else f"conveyor tree: CHANGED during the run ({tree_after[1]}): the figures mix versions"
    )
    print()
    print(f"{started}  ·  {command.strip()}")
    print("  ".join(f"{k} {v}" for k, v in found.items() if k not in ("dbos", "sqlalchemy")))
    print(tree_note)
    if "postgres" in databases:
        print(f"PostgreSQL: {pg_counters.server_version()} at {pg_counters.SERVER_URL}")
    for database, result in results["conveyor"].items():
        print(f"conveyor ({database}): {result['launch']}")
        print(
            f"  {result['created_in']:.1f} s to make the schedules; observed minutes "
            f"{', '.join(result['minutes'])}; runs made ahead (s after their minute): "
            + ", ".join(f"{a:+.1f}..{b:+.1f}" for a, b in result["polling"]["made_ahead"].values())
            + "; the queuing tick's clock (updated_at) after the minute: p50 "
            f"{_ms(result['recorded_lag_ms']['p50'])} ms, max "
            f"{_ms(result['recorded_lag_ms']['max'])} ms"
        )
    if results["celery"] is not None:
        beat = results["celery"]
        print(f"celery: {beat['launch']}")
        print(
            f"  first message {beat['first_message_after']:.1f} s after start; observed minutes "
            f"{', '.join(beat['minutes'])}"
        )
    if results["conveyor"] or results["celery"]:
        print()
        print(table(results, args.schedules))
    if args.json:
        out = {
            "date": started,
            "command": command.strip(),
            "versions": found,
            "tree": tree_note,
            "schedules": args.schedules,
            "poll_ms": args.poll_ms,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    if failed or args.keep_logs:
        print(f"logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
