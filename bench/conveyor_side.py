"""The Conveyor side of the benchmark: start `conveyor dev` on the bench project, push no-op
runs through it, and time single runs from trigger to start. Everything goes through the public
HTTP API with the public `conveyor.Client`, as a user's backend would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from processes import Service, ServiceExited, Usage, drain_rate, free_port, wait_until

from conveyor import Client

PROJECT = Path(__file__).resolve().parent / "projects" / "noop"
FINAL = {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"}


def cli_has_quiet() -> bool:
    """Whether `conveyor dev` takes --quiet (the option was being added when this was written)."""
    out = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "dev", "--help"], capture_output=True,
                         text=True, timeout=60)
    return "--quiet" in out.stdout


def dev_command(port: int, launch: str) -> tuple[list[str], str]:
    """The command starting the platform, and a note saying which one it is.

    `launch="auto"`: `conveyor dev --quiet` if the CLI has it, else `run_dev(..., quiet=True)`
    (what the CLI calls) so a line per run is not printed. `launch="cli"`: plain `conveyor dev`,
    printing a line per run into the log file.
    """
    python = sys.executable
    if launch == "cli":
        return [python, "-m", "conveyor.cli.main", "dev", "--port", str(port)], "conveyor dev (prints a line per run)"
    if cli_has_quiet():
        return [python, "-m", "conveyor.cli.main", "dev", "--port", str(port), "--quiet"], "conveyor dev --quiet"
    code = ("from conveyor.config import load_config; from conveyor.platform.dev import run_dev; "
            f"run_dev(load_config('.'), port={port}, quiet=True)")
    return [python, "-c", code], "run_dev(load_config('.'), quiet=True) (the CLI has no --quiet yet)"


class ConveyorPlatform:
    """`conveyor dev` for the bench project, on fresh state (its .conveyor folder deleted first)."""

    def __init__(self, log_dir: Path, launch: str = "auto", project: Path = PROJECT) -> None:
        self.project = project
        self.port = free_port()
        argv, self.launch_note = dev_command(self.port, launch)
        self.service = Service("conveyor", argv, cwd=project, log_path=log_dir / "conveyor-dev.log")
        self.client: Client | None = None

    def start(self, timeout: float = 60.0) -> Client:
        shutil.rmtree(self.project / ".conveyor", ignore_errors=True)
        self.service.start()
        state_file = self.project / ".conveyor" / "dev.json"
        api_url = f"http://127.0.0.1:{self.port}"

        def state() -> dict[str, Any] | None:
            if not self.service.alive():
                raise ServiceExited(f"conveyor dev exited:\n{self.service.log_tail()}")
            data = json.loads(state_file.read_text())
            return data if data.get("api_url") == api_url else None

        data = wait_until(state, timeout, what="conveyor dev to write .conveyor/dev.json")
        self.client = Client(api_url=api_url, secret_key=data["secret_key"], timeout=60)
        client = self.client

        def tasks_loaded() -> bool:
            if not self.service.alive():
                raise ServiceExited(f"conveyor dev exited:\n{self.service.log_tail()}")
            return {"noop", "stamp"} <= {t.id for t in client.tasks.list()}

        wait_until(tasks_loaded, timeout, what="conveyor dev to load the noop and stamp tasks")
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.service.stop()


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def wait_idle(client: Client, timeout: float, interval: float = 0.2) -> float:
    """Poll for a QUEUED or EXECUTING run (one per call) until none is left; when that was seen."""
    def idle() -> bool:
        return not client.runs.list(status=["QUEUED", "EXECUTING"], limit=1).data

    wait_until(idle, timeout, interval=interval, what="Conveyor to finish every queued run")
    return time.time()


def throughput(platform: ConveyorPlatform, runs: int, batch_size: int = 1000, timeout: float = 600.0,
               profiler: Any = None) -> dict[str, Any]:
    """Trigger `runs` no-op runs in batches, wait for all to end, and read when each completed.
    A `profiler` (profiling.Recorder) records from just before the first trigger until all ended."""
    client = platform.client
    assert client is not None
    items: list[dict[str, Any]] = [{"payload": {}}] * batch_size
    batch_ids: set[str] = set()
    with Usage(platform.service) as usage:
        if profiler is not None:
            profiler.start()
        t0 = time.time()
        left = runs
        while left:
            n = min(batch_size, left)
            batch_ids.add(client.batch_trigger("noop", items[:n]).batch_id)
            left -= n
        enqueued = time.time()
        seen = wait_idle(client, timeout)
        if profiler is not None:
            profiler.stop()
    statuses: Counter[str] = Counter()
    completed_at: list[float] = []
    started_at: list[float] = []
    cursor = None
    for _ in range(runs // 1000 + 100):  # bounded: one page per 1,000 runs plus whatever came before
        page = client.runs.list(task="noop", limit=1000, cursor=cursor)
        for run in page.data:
            if run.batch_id not in batch_ids:
                continue
            statuses[run.status.value] += 1
            if run.completed_at is not None:
                completed_at.append(run.completed_at.timestamp())
            if run.started_at is not None:
                started_at.append(run.started_at.timestamp())
        cursor = page.next_cursor
        if cursor is None:
            break
    last = max(completed_at) if completed_at else seen
    return {
        "runs": runs, "statuses": dict(statuses), "completed": statuses.get("COMPLETED", 0),
        "done_by_enqueue_end": sum(1 for at in completed_at if at <= enqueued),
        "drain_runs_per_second": drain_rate(completed_at, enqueued, last),
        "t0": t0, "enqueue_seconds": enqueued - t0, "seconds": last - t0, "observed_seconds": seen - t0,
        "first_start_after": (min(started_at) - t0) if started_at else None,
        "runs_per_second": statuses.get("COMPLETED", 0) / (last - t0),
        **usage.as_dict(),
    }


def latency(platform: ConveyorPlatform, samples: int, warmup: int = 20, gap: float = 0.02,
            poll: float = 0.01, timeout: float = 30.0, profiler: Any = None) -> dict[str, Any]:
    """Trigger `stamp` one run at a time; latency = its own time.time() at start minus the
    client's time.time() just before the trigger call. The run is polled until it ends (first
    poll `poll` s after the trigger, so polling does not compete with the start)."""
    client = platform.client
    assert client is not None
    starts: list[float] = []
    calls: list[float] = []
    with Usage(platform.service) as usage:
        for i in range(warmup + samples):
            if i == warmup and profiler is not None:
                profiler.start()
            before = time.time()
            handle = client.trigger("stamp", {})
            returned = time.time()
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(poll)
                run = client.runs.retrieve(handle.id)
                if run.status.value in FINAL:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {handle.id} did not end within {timeout:g}s")
            if run.status.value != "COMPLETED":
                raise RuntimeError(f"stamp run {handle.id} ended {run.status.value}: {run.error}")
            if i >= warmup:
                starts.append(run.output["started"] - before)
                calls.append(returned - before)
            time.sleep(gap)
        if profiler is not None:
            profiler.stop()
    return {"start_latency": starts, "trigger_call": calls, **usage.as_dict()}
