"""The Celery side of the schedules benchmark (bench/schedules.py): `celery beat` with N crontab
entries of every minute (beat_app.py), no worker, its messages counted as they arrive in Redis
and read back at the end.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psutil
import redis
from processes import Service, ServiceExited
from schedules_window import CPU_BEFORE, CpuMeter, Minutes, clock, figures

BENCH_DIR = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_BEAT_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = "celery"  # the Redis list beat's messages wait in
BEAT_WARM_UP = 5.0  # beat's first minute is its start-up: observe from the minute after it
BEAT_IDLE = 2.0  # after the window, beat is done once its queue stops growing this long


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
            f"celery beat: observing {clock(minutes.times[0])} to {clock(minutes.times[-1])}",
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
            "queued_while_observed_for": {clock(t): n for t, n in sorted(sent_for.items())},
        },
    )
