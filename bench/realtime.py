"""Realtime: N runs each changing their metadata `--rate` times a second (or piping a stream of
LLM-sized chunks), one server-sent-event subscriber per run, on one server. Measures the delivery
latency (the run's `time.time()` at the update -> the subscriber reading the event), events
delivered against updates made, and the server's CPU and RSS over the measured window.

    .venv/bin/python bench/realtime.py [--runs 1000[,300,...]] [--seconds 20] [--rate 10]
        [--chunk-rate 30] [--topology dev|server] [--what metadata|stream|both] [--executors 2]
        [--profile DIR | --trace DIR] [--json PATH] [--keep-logs]

Each workload (one `--what` at one N) gets a freshly started platform on fresh state:

- dev: `conveyor dev --quiet --executors E --capacity max(N, 500)` on projects/realtime
  (embedded SQLite), its state folder deleted before and after;
- server: `conveyor server` on the PostgreSQL database `bench_realtime` (dropped and created
  empty before, dropped after; BENCH_PG_URL names the server) and one
  `conveyor worker --executors E --capacity ...` in projects/realtime.

The runs are triggered in batches, all told to start at the same wall-clock time a few seconds
ahead (each then waits a random phase within one interval, so they do not tick in lockstep);
meanwhile bench/realtime_subscribers.py, a process of its own, opens one subscription per run.
The measured window is from that start for `--seconds`: CPU (user + system) and peak RSS of the
platform's processes (dev process or server + worker, with their executors), of the
subscribers' process, and of everything else on the machine (noise; PostgreSQL on `server`).
Latency is counted once per update, at the first event that carries it (a subscriber gets
snapshots: updates made faster than they are delivered are coalesced, and the table says how
many).

`--profile DIR` runs the server process (dev, or `conveyor server`; on `server` the worker too)
under cProfile (bench/realtime_profile.py), keeps the measured window alone and writes
DIR/<workload>.prof, one profile per group of threads, and a ranking (.txt): it slows the
server, so its latencies are not the ones to quote. `--trace DIR` times the stages each update
goes through inside the server instead (bench/realtime_profile.py `trace`) and prints them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from processes import GroupUsage, Service, ServiceExited, free_port, project_key, wait_until
from report import percentile

from conveyor import Client

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "projects" / "realtime"
SUBSCRIBERS = HERE / "realtime_subscribers.py"
PROFILER = HERE / "realtime_profile.py"
DATABASE = "bench_realtime"
TASKS = {"metadata": ("ticker", "run"), "stream": ("streamer", "stream")}
BATCH = 1000  # items per batch_trigger call


def conveyor_tree() -> str:
    """A short hash of the conveyor package's code: others edit the tree while benchmarks run,
    and a workload whose hash changed between its start and its end mixes two versions."""
    root = HERE.parent / "conveyor"
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


# -- the platforms ------------------------------------------------------------------------------


def _conveyor(profile: Path | None) -> list[str]:
    """The command line of `conveyor`: under cProfile for a `.prof` path, with its stages timed
    for a `.json` one (bench/realtime_profile.py)."""
    if profile is not None and profile.suffix == ".json":
        return [sys.executable, str(PROFILER), "--trace", str(profile)]
    if profile is not None:
        return [sys.executable, str(PROFILER), str(profile)]
    return [sys.executable, "-m", "conveyor.cli.main"]


class DevPlatform:
    """`conveyor dev` on projects/realtime, embedded SQLite, fresh state."""

    def __init__(self, log_dir: Path, executors: int, capacity: int, profile: Path | None) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        argv = [
            *_conveyor(profile),
            "dev",
            "--port",
            str(self.port),
            "--quiet",
            "--executors",
            str(executors),
            "--capacity",
            str(capacity),
        ]
        self.note = f"conveyor dev --quiet --executors {executors} --capacity {capacity}"
        self.server = Service("conveyor-dev", argv, cwd=PROJECT, log_path=log_dir / "dev.log")
        self.services = [self.server]
        self.key = ""
        self.client: Client | None = None

    def start(self, timeout: float = 90.0) -> None:
        shutil.rmtree(PROJECT / ".conveyor", ignore_errors=True)
        self.server.start()
        state_file = PROJECT / ".conveyor" / "dev.json"

        def state() -> dict[str, Any] | None:
            if not self.server.alive():
                raise ServiceExited(f"conveyor dev exited:\n{self.server.log_tail()}")
            data = json.loads(state_file.read_text())
            return data if data.get("api_url") == self.api_url else None

        self.key = wait_until(state, timeout, what="conveyor dev to write dev.json")["secret_key"]
        self.client = _client_with_tasks(self.api_url, self.key, self.services, timeout)

    def stored_chunks(self) -> dict[tuple[str, int], float]:
        """(run id, chunk number) -> when the engine stored the chunk (its clock)."""
        with contextlib.closing(sqlite3.connect(PROJECT / ".conveyor" / "dev.db")) as db:
            rows = db.execute(
                "SELECT run_id, seq, created_at FROM run_streams WHERE name = 'llm' AND done = 0"
            ).fetchall()
        return {(r[0], int(r[1])): float(r[2]) for r in rows}

    def stop(self, grace: float = 10.0) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop(grace)
        shutil.rmtree(PROJECT / ".conveyor", ignore_errors=True)


class ServerPlatform:
    """`conveyor server` on a fresh PostgreSQL database and one `conveyor worker`, set up as in
    conveyor_server_side.py (the admin token makes a project; its prod key runs everything)."""

    def __init__(self, log_dir: Path, executors: int, capacity: int, profile: Path | None) -> None:
        import pg_counters

        self._pg = pg_counters
        self.log_dir = log_dir
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.url = pg_counters.database_url(DATABASE)
        self._home = Path(tempfile.mkdtemp(prefix="conveyor-realtime-"))
        argv = [*_conveyor(profile), "server", "--database-url", self.url, "--port", str(self.port)]
        self.server = Service(
            "conveyor-server", argv, cwd=self._home, log_path=log_dir / "server.log"
        )
        worker_profile = None  # the worker is profiled or traced too, into a file of its own
        if profile is not None:
            worker_profile = profile.with_name(profile.stem + "-worker" + profile.suffix)
        self.worker_argv = [
            *_conveyor(worker_profile),
            "worker",
            "--executors",
            str(executors),
            "--capacity",
            str(capacity),
            "--quiet",
        ]
        self.note = (
            f"conveyor server --database-url {self.url} + conveyor worker --executors "
            f"{executors} --capacity {capacity} --quiet"
        )
        self.services = [self.server]
        self.key = ""
        self.client: Client | None = None

    def start(self, timeout: float = 90.0) -> None:
        self._pg.recreate(DATABASE)
        self.server.start()

        self.key = project_key(self.server, self.api_url, "realtime", timeout)
        env = dict(os.environ, CONVEYOR_API_URL=self.api_url, CONVEYOR_SECRET_KEY=self.key)
        worker = Service(
            "conveyor-worker",
            self.worker_argv,
            cwd=PROJECT,
            log_path=self.log_dir / "worker.log",
            env=env,
        )
        self.services.append(worker)
        worker.start()
        self.client = _client_with_tasks(self.api_url, self.key, self.services, timeout)

    def stored_chunks(self) -> dict[tuple[str, int], float]:
        import psycopg

        with psycopg.connect(self.url) as db:
            rows = db.execute(
                "SELECT run_id, seq, created_at FROM run_streams WHERE name = 'llm' AND done = 0"
            ).fetchall()
        return {(r[0], int(r[1])): float(r[2]) for r in rows}

    def stop(self, grace: float = 10.0) -> None:
        if self.client is not None:
            self.client.close()
        for service in reversed(self.services):
            service.stop(grace)
        self._pg.drop(DATABASE)
        shutil.rmtree(self._home, ignore_errors=True)
        shutil.rmtree(PROJECT / ".conveyor", ignore_errors=True)


def _client_with_tasks(api_url: str, key: str, services: list[Service], timeout: float) -> Client:
    client = Client(api_url=api_url, secret_key=key, timeout=120)

    def loaded() -> bool:
        for service in services:
            if not service.alive():
                raise ServiceExited(f"{service.name} exited:\n{service.log_tail()}")
        return {"ticker", "streamer"} <= {t.id for t in client.tasks.list()}

    wait_until(loaded, timeout, what="the tasks ticker and streamer to load")
    return client


# -- one workload -------------------------------------------------------------------------------


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return 0.0


def _read_line(stream: Any, timeout: float) -> str:
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else ""


def measure(
    platform: DevPlatform | ServerPlatform,
    what: str,
    n_runs: int,
    seconds: float,
    rate: float,
    log_dir: Path,
    mark_window: bool = False,
) -> dict[str, Any]:
    """Trigger the runs, subscribe to each, measure the window; the raw events and figures."""
    client = platform.client
    assert client is not None
    task_id, kind = TASKS[what]
    per_run = max(1, round(seconds * rate))
    interval = 1.0 / rate
    lead = 5.0 + 0.012 * n_runs  # to start every run and open every subscription first
    start = time.time() + lead
    rng = random.Random(n_runs)
    items = [
        {
            "payload": {
                "n": per_run,
                "interval": interval,
                "start": start,
                "phase": rng.uniform(0, interval),
                "seed": k,
            }
        }
        for k in range(n_runs)
    ]
    ids: list[str] = []
    for first in range(0, n_runs, BATCH):
        ids += [h.id for h in client.batch_trigger(task_id, items[first : first + BATCH]).runs]
    ids_file = log_dir / f"{what}-{n_runs}-ids.txt"
    ids_file.write_text("\n".join(ids))
    out_file = log_dir / f"{what}-{n_runs}-events.json"
    deadline = start + seconds * 3 + 60  # runs that fall behind finish late; give them time
    with open(log_dir / f"{what}-{n_runs}-subscribers.log", "wb") as errors:
        subscribers = subprocess.Popen(
            [
                sys.executable,
                str(SUBSCRIBERS),
                "--url",
                platform.api_url,
                "--key",
                platform.key,
                "--kind",
                kind,
                "--ids",
                str(ids_file),
                "--out",
                str(out_file),
                "--deadline",
                str(deadline),
                "--connect-timeout",
                str(lead + 30),
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    try:
        line = _read_line(subscribers.stdout, lead + 60).split()
        connected = int(line[1]) if line else 0
        connected_at = float(line[2]) if line else float("nan")
        print(
            f"  {connected}/{n_runs} subscribers connected "
            f"{start - connected_at:+.1f} s before the start",
            flush=True,
        )
        time.sleep(max(0.0, start - time.time()))
        client_proc = psutil.Process(subscribers.pid)
        client0 = _cpu(client_proc)
        with GroupUsage(platform.services) as usage:
            if mark_window:  # the profiler keeps this window alone (realtime_profile.py)
                for service in platform.services:
                    os.kill(service.pid, signal.SIGUSR1)
            time.sleep(seconds)
            if mark_window:
                for service in platform.services:
                    os.kill(service.pid, signal.SIGUSR2)
        client_cpu = _cpu(client_proc) - client0
        subscribers.wait(max(1.0, deadline - time.time()) + 30)
    finally:
        if subscribers.poll() is None:
            subscribers.kill()
            subscribers.wait()
    events = json.loads(out_file.read_text())["subscriptions"]
    outputs = _outputs(client, ids)
    stored = platform.stored_chunks() if kind == "stream" else {}
    figures = summarize(kind, events, outputs, stored, n_runs, per_run, interval)
    window = usage.as_dict()
    # each service's own process apart from its children (the executors)
    window["cpu_main_by_service"] = {p.service.name: p.cpu_main for p in usage.parts}
    figures.update(
        window_start=start,
        what=what,
        runs=n_runs,
        seconds=seconds,
        rate=rate,
        per_run=per_run,
        connected=connected,
        connected_before_start=start - connected_at,
        usage=window,
        client_cpu=client_cpu,
        server_cores=window["cpu"] / window["window"],
        client_cores=client_cpu / window["window"],
        other_cores=max(0.0, window["cpu_other"] - client_cpu) / window["window"],
    )
    return figures


def _outputs(client: Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's status and output, read back once every subscriber ended."""
    wanted = set(ids)
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    for _ in range(len(ids) // 500 + 10):
        page = client.runs.list(limit=500, cursor=cursor)
        for run in page.data:
            if run.id in wanted:
                found[run.id] = {"status": run.status.value, "output": run.output}
        cursor = page.next_cursor
        if cursor is None or len(found) == len(wanted):
            break
    return found


def summarize(
    kind: str,
    subscriptions: list[dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    stored: dict[tuple[str, int], float],
    n_runs: int,
    per_run: int,
    interval: float,
) -> dict[str, Any]:
    """Latencies (ms) of the first receipt of each update, and the counts.

    `behind` is the receipt against when the update was due (the run's first update plus
    `i` intervals): `streams.pipe` waits for each batch it sends before it takes the next chunk,
    so a slow platform slows the stream itself, which the latency from the chunk's own time
    does not show (a real LLM would not wait: its tokens would queue)."""
    latency: list[float] = []
    behind: list[float] = []
    to_commit: list[float] = []  # the run's update -> the engine's commit
    to_subscriber: list[float] = []  # the commit -> the subscriber
    # every update, delivered or superseded: from when it was due until its subscriber read
    # it or a newer one (metadata is state: a newer value carries the older one's change)
    stale: list[float] = []
    never_seen = 0
    delivered = 0
    snapshots = 0
    missing_store = 0
    for sub in subscriptions:
        snapshots += sub["snapshots"] if kind == "run" else len(sub["events"])
        seen: set[int] = set()
        output = (outputs.get(sub["run_id"]) or {}).get("output") or {}
        first = output.get("first")
        if kind == "run" and first:
            newest = -1
            for event in sorted(sub["events"], key=lambda e: e[-1]):
                number, recv = int(event[0]), event[-1]
                for i in range(newest + 1, number + 1):
                    stale.append((recv - (first + i * interval)) * 1000)
                newest = max(newest, number)
            never_seen += max(0, int(output.get("n", newest + 1)) - (newest + 1))
        for event in sub["events"]:
            number = int(event[0])
            if number in seen:  # the same tick again (the snapshot of the run's end, say)
                continue
            seen.add(number)
            at, recv = event[1], event[-1]
            latency.append((recv - at) * 1000)
            if first:
                behind.append((recv - (first + number * interval)) * 1000)
            if kind == "run":
                committed = event[2]
            else:
                committed = stored.get((sub["run_id"], number), 0.0)
                missing_store += not committed
            if committed:
                to_commit.append((committed - at) * 1000)
                to_subscriber.append((recv - committed) * 1000)
        delivered += len(seen)
    # a completed run says how many it made; one still running by the deadline made all its
    # metadata updates (metadata.set never waits), or at least the chunks its reader saw
    made = 0
    rates: list[float] = []
    statuses: dict[str, int] = {}
    seen_max = {
        s["run_id"]: 1 + max((int(e[0]) for e in s["events"]), default=-1) for s in subscriptions
    }
    for run_id in seen_max:
        found = outputs.get(run_id) or {"status": "?", "output": None}
        statuses[found["status"]] = statuses.get(found["status"], 0) + 1
        output = found["output"] or {}
        if "n" in output:
            made += int(output["n"])
        else:
            made += per_run if kind == "run" else seen_max[run_id]
        if output.get("n", 0) > 1 and output["last"] > output["first"]:
            rates.append(output["n"] / (output["last"] - output["first"]))

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "p99": percentile(values, 99),
            "max": max(values, default=float("nan")),
        }

    return {
        "made": made,
        "expected": n_runs * per_run,
        "delivered": delivered,
        "snapshots": snapshots,
        "statuses": statuses,
        "ended": sum(1 for s in subscriptions if s["ended"]),
        "errors": [s["error"] for s in subscriptions if s["error"]][:5],
        "error_count": sum(1 for s in subscriptions if s["error"]),
        "latency_ms": spread(latency),
        "behind_ms": spread(behind),
        "stale_ms": spread(stale),
        "never_seen": never_seen,
        "over_100ms": sum(1 for v in latency if v > 100) / len(latency) if latency else 0.0,
        "to_commit_ms": spread(to_commit),
        "to_subscriber_ms": spread(to_subscriber),
        "missing_store": missing_store,
        "achieved_rate": percentile(rates, 50) if rates else float("nan"),
        "achieved_rate_min": min(rates, default=float("nan")),
        "latencies": [round(v, 2) for v in latency],
    }


# -- the report ---------------------------------------------------------------------------------


def _statuses(statuses: dict[str, int]) -> str:
    done = statuses.get("COMPLETED", 0)
    rest = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()) if k != "COMPLETED")
    return f"{done}" + (f" ({rest})" if rest else "")


def _share(part: int, whole: int) -> str:
    return f"{part / max(1, whole):.1%}"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def table(results: list[dict[str, Any]]) -> str:
    head = [f"{r['what']} N={r['runs']}" for r in results]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cell: Any) -> None:
        rows.append((label, [cell(r) for r in results]))

    row(
        "updates (chunks) a second per run, asked / done (median run)",
        lambda r: f"{r['rate']:g} / {r['achieved_rate']:.1f}",
    )
    row("subscribers connected / ended with `end`", lambda r: f"{r['connected']} / {r['ended']}")
    row("runs completed (by the subscribers' deadline)", lambda r: _statuses(r["statuses"]))
    row("updates made (metadata.set; stream chunks)", lambda r: f"{r['made']:,}")
    row("updates delivered (seen by their subscriber)", lambda r: f"{r['delivered']:,}")
    row(
        "  coalesced or lost (made - delivered)",
        lambda r: (
            f"{r['made'] - r['delivered']:,} ({_share(r['made'] - r['delivered'], r['made'])})"
        ),
    )
    row("events received (`run` snapshots; `chunk`s)", lambda r: f"{r['snapshots']:,}")
    for q in ("p50", "p95", "p99", "max"):
        row(
            f"**latency {q}** (ms, update in the run -> event read)",
            lambda r, q=q: _ms(r["latency_ms"][q]),
        )
    row("  events over 100 ms", lambda r: f"{r['over_100ms']:.1%}")
    row(
        "**every update, delivered or superseded**: due -> it or a newer one read, p50 / p99 (ms)",
        lambda r: (
            (
                f"{_ms(r['stale_ms']['p50'])} / {_ms(r['stale_ms']['p99'])}"
                + (f" ({r['never_seen']:,} never)" if r["never_seen"] else "")
            )
            if r.get("stale_ms")
            else "-"
        ),
    )
    row(
        "  receipt against when the update was due, p50 / p99 (ms)",
        lambda r: f"{_ms(r['behind_ms']['p50'])} / {_ms(r['behind_ms']['p99'])}",
    )
    row(
        "  update -> committed, p50 / p99 (ms)",
        lambda r: f"{_ms(r['to_commit_ms']['p50'])} / {_ms(r['to_commit_ms']['p99'])}",
    )
    row(
        "  committed -> subscriber, p50 / p99 (ms)",
        lambda r: f"{_ms(r['to_subscriber_ms']['p50'])} / {_ms(r['to_subscriber_ms']['p99'])}",
    )
    row(
        "**server CPU** (cores, window average; executors included)",
        lambda r: f"{r['server_cores']:.2f}",
    )
    row("  by process (CPU s)", lambda r: _by_service(r["usage"]))
    row(
        "**server peak RSS** (processes summed)",
        lambda r: f"{r['usage']['peak_rss'] / 1024**2:.0f} MB",
    )
    row("subscribers' process CPU (cores)", lambda r: f"{r['client_cores']:.2f}")
    row("everything else on the machine (cores)", lambda r: f"{r['other_cores']:.2f}")
    row("subscription errors", lambda r: str(r["error_count"]))
    row("conveyor tree (hash of its code)", lambda r: r["tree"])
    lines = ["| | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def stage_summary(path: Path, figures: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The stage timings (bench/realtime_profile.py --trace) inside the measured window."""
    start = figures["window_start"]
    end = start + figures["seconds"]
    found: dict[str, dict[str, float]] = {}
    traced = json.loads(path.read_text())
    worker = path.with_name(path.stem + "-worker.json")
    if worker.exists():  # `conveyor worker`'s own stages
        own = json.loads(worker.read_text())
        traced |= {k: own[k] for k in ("worker_arrive", "http_call") if k in own}
        traced["worker_loop_lag"] = own.get("loop_lag", [])
    for stage, samples in traced.items():
        values = [ms for at, ms in samples if start <= at <= end]
        if values:
            found[stage] = {
                "count": len(values),
                "mean": sum(values) / len(values),
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "max": max(values),
            }
    return found


def stages_text(stages: dict[str, dict[str, float]]) -> str:
    lines = ["  stage                 count     mean      p50      p99      max"]
    for stage, f in stages.items():
        lines.append(
            f"  {stage:<18} {f['count']:8d} {f['mean']:8.2f} {f['p50']:8.2f} {f['p99']:8.2f} "
            f"{f['max']:8.2f}"
        )
    return "\n".join(lines)


def _by_service(usage: dict[str, Any]) -> str:
    """CPU seconds of each service's own process, and of its children (executors)."""
    parts = []
    for name, cpu in usage["cpu_by_service"].items():
        main = usage["cpu_main_by_service"][name]
        parts.append(f"{name.removeprefix('conveyor-')} {main:.1f} + executors {cpu - main:.1f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000", help="N, or several: 100,300,1000")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--rate", type=float, default=10.0, help="metadata updates/s per run")
    parser.add_argument("--chunk-rate", type=float, default=30.0, help="stream chunks/s per run")
    parser.add_argument("--topology", choices=["dev", "server"], default="dev")
    parser.add_argument("--what", choices=["metadata", "stream", "both"], default="both")
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="cProfile the server process into DIR")
    parser.add_argument(
        "--trace", type=Path, help="time the stages of each update in the server, into DIR"
    )
    parser.add_argument("--json", type=Path, help="save every figure and latency here")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    sizes = [int(n) for n in args.runs.split(",")]
    whats = ["metadata", "stream"] if args.what == "both" else [args.what]
    log_dir = Path(tempfile.mkdtemp(prefix="conveyor-realtime-logs-"))
    for folder in (args.profile, args.trace):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    kind = DevPlatform if args.topology == "dev" else ServerPlatform
    results: list[dict[str, Any]] = []
    failed = False
    for what in whats:
        rate = args.rate if what == "metadata" else args.chunk_rate
        for n in sizes:
            name = f"{args.topology}-{what}-{n}"
            profile = args.profile / f"{name}.prof" if args.profile else None
            if args.trace:
                profile = args.trace / f"{name}.json"
            platform = kind(log_dir / name, args.executors, max(n, 500), profile)
            print(
                f"{name}: {platform.note}, {n} runs x {rate:g}/s for {args.seconds:g} s", flush=True
            )
            tree = conveyor_tree()
            try:
                platform.start()
                figures = measure(
                    platform,
                    what,
                    n,
                    args.seconds,
                    rate,
                    log_dir,
                    mark_window=profile is not None and profile.suffix == ".prof",
                )
                figures["platform"] = platform.note
                after = conveyor_tree()
                figures["tree"] = tree if after == tree else f"{tree} CHANGED to {after}"
                results.append(figures)
                print(
                    f"  latency p50 {_ms(figures['latency_ms']['p50'])} p99 "
                    f"{_ms(figures['latency_ms']['p99'])} ms; delivered {figures['delivered']:,}"
                    f" of {figures['made']:,}; server {figures['server_cores']:.2f} cores, "
                    f"{figures['usage']['peak_rss'] / 1024**2:.0f} MB",
                    flush=True,
                )
            except Exception as exc:
                failed = True
                print(f"  FAILED: {type(exc).__name__}: {exc}", flush=True)
            finally:
                platform.stop(grace=60.0 if profile else 10.0)
            if args.trace and profile is not None and profile.exists() and results:
                stages = stage_summary(profile, results[-1])
                results[-1]["stages"] = stages
                print(stages_text(stages), flush=True)
            elif profile is not None and profile.exists():
                from realtime_profile import summary

                for path in (profile, profile.with_name(profile.stem + "-worker.prof")):
                    if path.exists():
                        text = summary(path)
                        path.with_suffix(".txt").write_text(text)
                        print("\n".join(text.splitlines()[:36]), flush=True)
    if results:
        print()
        print(table(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"profile": str(args.profile)}, "results": results},
                default=str,
            )
        )
    if failed or args.keep_logs:
        print(f"logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
