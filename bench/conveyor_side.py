"""The Conveyor side of the benchmark: start `conveyor dev` on the bench project, push no-op
runs through it, and time single runs from trigger to start. Everything goes through the public
HTTP API with the public `conveyor.Client`, as a user's backend would.
"""

from __future__ import annotations

import json
import os
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
ASYNCIO_SHIM = Path(__file__).resolve().parent / "shims" / "asyncio_loop"
DURABLE_PROJECT = Path(__file__).resolve().parent / "projects" / "durable"
DURABLE_TASKS = frozenset({"noop", "fan-parent", "work-100ms", "limited-parent", "durable-sleep"})
FINAL = {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"}


def cli_has_quiet() -> bool:
    """Whether `conveyor dev` takes --quiet (the option was being added when this was written)."""
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "dev", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "--quiet" in out.stdout


def dev_command(port: int, launch: str) -> tuple[list[str], str]:
    """The command starting the platform, and a note saying which one it is.

    `launch="auto"`: `conveyor dev --quiet` if the CLI has it, else `run_dev(..., quiet=True)`
    (what the CLI calls) so a line per run is not printed. `launch="cli"`: plain `conveyor dev`,
    printing a line per run into the log file.
    """
    python = sys.executable
    if launch == "cli":
        return [
            python,
            "-m",
            "conveyor.cli.main",
            "dev",
            "--port",
            str(port),
        ], "conveyor dev (prints a line per run)"
    if cli_has_quiet():
        return [
            python,
            "-m",
            "conveyor.cli.main",
            "dev",
            "--port",
            str(port),
            "--quiet",
        ], "conveyor dev --quiet"
    code = (
        "from conveyor.config import load_config; from conveyor.platform.dev import run_dev; "
        f"run_dev(load_config('.'), port={port}, quiet=True)"
    )
    return [
        python,
        "-c",
        code,
    ], "run_dev(load_config('.'), quiet=True) (the CLI has no --quiet yet)"


class ConveyorPlatform:
    """`conveyor dev` for the bench project, on fresh state (its .conveyor folder deleted first)."""

    def __init__(
        self,
        log_dir: Path,
        launch: str = "auto",
        project: Path = PROJECT,
        tasks: frozenset[str] = frozenset({"noop", "stamp"}),
        log_name: str = "conveyor-dev",
        loop: str = "default",
    ) -> None:
        self.project = project
        self.tasks = tasks
        self.port = free_port()
        argv, self.launch_note = dev_command(self.port, launch)
        env = None
        # hide uvloop from the dev process and its executors (shims/asyncio_loop)
        if loop == "asyncio":
            env = dict(
                os.environ,
                PYTHONPATH=os.pathsep.join(
                    filter(None, [str(ASYNCIO_SHIM), os.environ.get("PYTHONPATH")])
                ),
            )
            self.launch_note += " (asyncio event loop: uvloop hidden)"
        self.service = Service(
            "conveyor", argv, cwd=project, log_path=log_dir / f"{log_name}.log", env=env
        )
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
            return self.tasks <= {t.id for t in client.tasks.list()}

        wait_until(
            tasks_loaded, timeout, what=f"conveyor dev to load the tasks {sorted(self.tasks)}"
        )
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.service.stop()
        # its database, key and lock: temp state
        shutil.rmtree(self.project / ".conveyor", ignore_errors=True)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def wait_idle(client: Client, timeout: float, interval: float = 0.2) -> float:
    """Poll for a QUEUED or EXECUTING run (one per call) until none is left; when that was seen."""

    def idle() -> bool:
        return not client.runs.list(status=["QUEUED", "EXECUTING"], limit=1).data

    wait_until(idle, timeout, interval=interval, what="Conveyor to finish every queued run")
    return time.time()


def throughput(
    platform: ConveyorPlatform,
    runs: int,
    batch_size: int = 1000,
    timeout: float = 600.0,
    profiler: Any = None,
) -> dict[str, Any]:
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
    # bounded: one page per 1,000 runs plus whatever came before
    for _ in range(runs // 1000 + 100):
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
        "runs": runs,
        "statuses": dict(statuses),
        "completed": statuses.get("COMPLETED", 0),
        "done_by_enqueue_end": sum(1 for at in completed_at if at <= enqueued),
        "drain_runs_per_second": drain_rate(completed_at, enqueued, last),
        "t0": t0,
        "enqueue_seconds": enqueued - t0,
        "seconds": last - t0,
        "observed_seconds": seen - t0,
        "first_start_after": (min(started_at) - t0) if started_at else None,
        "runs_per_second": statuses.get("COMPLETED", 0) / (last - t0),
        **usage.as_dict(),
    }


def stamp_once(client: Client, poll: float, timeout: float) -> tuple[float, float]:
    """Trigger `stamp` and poll the run until it ends: (when the trigger call returned, the
    task's own time.time() at start)."""
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
    return returned, float(run.output["started"])


def latency(
    platform: ConveyorPlatform,
    samples: int,
    warmup: int = 20,
    gap: float = 0.02,
    poll: float = 0.01,
    timeout: float = 30.0,
    profiler: Any = None,
) -> dict[str, Any]:
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
            returned, started = stamp_once(client, poll, timeout)
            if i >= warmup:
                starts.append(started - before)
                calls.append(returned - before)
            time.sleep(gap)
        if profiler is not None:
            profiler.stop()
    return {"start_latency": starts, "trigger_call": calls, **usage.as_dict()}


# -- the durable workloads (workloads.py) ----------------------------------------------------


def all_runs(client: Client, task: str, limit_pages: int = 100) -> list[Any]:
    """Every run of `task`, newest first, page by page (bounded)."""
    runs: list[Any] = []
    cursor = None
    for _ in range(limit_pages):
        page = client.runs.list(task=task, limit=1000, cursor=cursor)
        runs.extend(page.data)
        cursor = page.next_cursor
        if cursor is None:
            break
    return runs


def _parent_figures(run: Any, t0: float, seen: float) -> dict[str, Any]:
    return {
        "status": run.status.value,
        "output": run.output,
        "t0": t0,
        "error": f"{run.error.name}: {run.error.message}" if run.error else None,
        "seconds": run.completed_at.timestamp() - t0 if run.completed_at else seen - t0,
        "observed_seconds": seen - t0,
        "parent_started": _epoch(run.started_at) - t0 if run.started_at else None,
    }


def fanout(platform: ConveyorPlatform, n: int, timeout: float = 300.0) -> dict[str, Any]:
    """`fan-parent` with n: one batch_trigger_and_wait of n no-op children (1,000 per call).
    Clock: the client's time.time() before the trigger call to the parent's completed_at."""
    client = platform.client
    assert client is not None
    with Usage(platform.service) as usage:
        t0 = time.time()
        handle = client.trigger("fan-parent", {"n": n})
        run = client.runs.poll(handle.id, interval=0.05, timeout=timeout)
        seen = time.time()
    out = _parent_figures(run, t0, seen)
    children = all_runs(client, "noop")
    done = [c.completed_at.timestamp() for c in children if c.completed_at is not None]
    out.update(
        {
            "children": len(children),
            "children_ok": sum(1 for c in children if c.status.value == "COMPLETED"),
            "children_first_start": min(
                (c.started_at.timestamp() for c in children if c.started_at), default=t0
            )
            - t0,
            "children_last_end": (max(done) - t0) if done else None,
            **usage.as_dict(),
        }
    )
    if done and run.completed_at:
        out["resume_after_last_child"] = run.completed_at.timestamp() - max(done)
    return out


def limited(
    platform: ConveyorPlatform, n: int, limit: int, timeout: float = 300.0
) -> dict[str, Any]:
    """`limited-parent` with n: batch_trigger_and_wait of n `work-100ms` children in queue `five`
    (concurrency_limit 5). Peak concurrency from the runs' started_at/completed_at (recorded by the
    platform) and from the children's own time.time() stamps (their output)."""
    from workloads import interval_figures

    client = platform.client
    assert client is not None
    with Usage(platform.service) as usage:
        t0 = time.time()
        handle = client.trigger("limited-parent", {"n": n})
        run = client.runs.poll(handle.id, interval=0.05, timeout=timeout)
        seen = time.time()
    out = _parent_figures(run, t0, seen)
    children = all_runs(client, "work-100ms")
    recorded = [
        (c.started_at.timestamp(), c.completed_at.timestamp())
        for c in children
        if c.started_at is not None and c.completed_at is not None
    ]
    own = [(c.output["started"], c.output["ended"]) for c in children if isinstance(c.output, dict)]
    out.update(
        {
            "children": len(children),
            "children_ok": sum(1 for c in children if c.status.value == "COMPLETED"),
            **interval_figures("recorded", recorded, t0, limit),
            **interval_figures("own", own, t0, limit),
            **usage.as_dict(),
        }
    )
    return out


def durable_sleep(
    platform: ConveyorPlatform, n: int, seconds: float, timeout: float = 300.0
) -> dict[str, Any]:
    """n runs of `durable-sleep` (wait.for_(seconds): each run suspends, WAITING with no process
    and no slot, and is resumed when the wait is over), triggered in batches of 1,000. Clock: the
    client's time.time() before the first batch call to the largest completed_at."""
    client = platform.client
    assert client is not None
    items = [{"payload": {"seconds": seconds}}] * min(n, 1000)
    with Usage(platform.service) as usage:
        t0 = time.time()
        left = n
        while left:
            client.batch_trigger("durable-sleep", items[: min(1000, left)])
            left -= min(1000, left)
        triggered = time.time()

        def suspended() -> bool:  # nothing queued or executing: every run is WAITING (or done)
            return not client.runs.list(status=["QUEUED", "EXECUTING"], limit=1).data

        all_waiting = None
        try:
            wait_until(suspended, seconds, interval=0.1, what="every durable-sleep run to suspend")
            all_waiting = time.time()
        except TimeoutError:
            pass

        def finished() -> bool:
            return not client.runs.list(status=["QUEUED", "EXECUTING", "WAITING"], limit=1).data

        wait_until(finished, timeout, interval=0.2, what="every durable-sleep run to end")
        seen = time.time()
    runs = all_runs(client, "durable-sleep")
    done = [r.completed_at.timestamp() for r in runs if r.completed_at is not None]
    last = max(done) if done else seen
    return {
        "t0": t0,
        "runs": len(runs),
        "children_ok": sum(1 for r in runs if r.status.value == "COMPLETED"),
        "trigger_seconds": triggered - t0,
        "all_waiting_after": all_waiting - t0 if all_waiting else None,
        "seconds": last - t0,
        "observed_seconds": seen - t0,
        "first_end": (min(done) - t0) if done else None,
        **usage.as_dict(),
    }
