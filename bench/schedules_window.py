"""What the schedules benchmark measures the same way for every system (bench/schedules.py):
the observed minutes and the CPU window around them, CPU seconds of groups of processes, and
one system's figures (lags, completeness, CPU per fire).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import redis
from report import percentile

from conveyor.engine.schedules import LOOKAHEAD

CPU_BEFORE = LOOKAHEAD + 5  # the CPU window opens this long before the first observed minute
GIVE_UP = 59.0  # a fire not seen this long after its minute is missing


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


def sleep_until(moment: float) -> None:
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
        "minutes": [clock(t) for t in minutes.times],
        "window": [minutes.start, minutes.end],
        **extra,
    }


def clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(moment))
