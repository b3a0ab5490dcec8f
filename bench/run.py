"""Conveyor against Celery on Redis, DBOS and Procrastinate, the same workloads in the same run.
See bench/README.md.

    .venv/bin/python bench/run.py [--suite all|throughput|durable|postgres|fairness]
                                  [--only conveyor|celery|dbos|procrastinate]

Suites: `throughput` is the no-op throughput and trigger-to-start latency against Celery;
`durable` is fan-out with a waiting parent, a concurrency-limited queue and durable sleeps
against Celery and DBOS (Postgres and SQLite); `postgres` is Conveyor's server on PostgreSQL
against DBOS's queue and Procrastinate on the same PostgreSQL: throughput, latency and writes
per run; `fairness` is how the slots are shared between tenants (Conveyor's concurrency keys
against Celery's FIFO queue): one tenant's run behind another's backlog of 10,000, and Jain's
index over 100 tenants. `all` (the default) runs the four.

Each system is started on fresh state, measured, and stopped (its whole process group, and every
pid seen under it) before the next starts, so they never share the two cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import report  # noqa: E402


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import psutil
    import redis

    found = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpus": str(psutil.cpu_count()),
        "cpu": _cpu_name(),
        "memory": f"{psutil.virtual_memory().total / 1024**3:.0f} GB",
    }
    for package in (
        "conveyor",
        "celery",
        "kombu",
        "redis",
        "uvicorn",
        "fastapi",
        "dbos",
        "sqlalchemy",
        "psycopg",
    ):
        try:
            found[package] = version(package)
        except Exception:
            found[package] = "?"
    try:
        found["redis-server"] = str(
            redis.Redis.from_url("redis://127.0.0.1:6379/0").info("server")["redis_version"]
        )
    except Exception:
        found["redis-server"] = "?"
    return found


def conveyor_tree() -> tuple[float, str]:
    """The newest modification time among the conveyor package's files, and which file: other
    people edit the tree while benchmarks run, and figures straddling an edit are suspect."""
    import conveyor

    root = Path(conveyor.__file__).resolve().parent
    newest, name = 0.0, "?"
    for path in root.rglob("*"):
        if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
            mtime = path.stat().st_mtime
            if mtime > newest:
                newest, name = mtime, str(path.relative_to(root.parent))
    return newest, name


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's figures over every round: the median round for throughput (by runs/s), the
    latency samples of all rounds pooled."""
    ordered = sorted(rounds, key=lambda r: r["throughput"]["runs_per_second"])
    out: dict[str, Any] = {
        "throughput": ordered[len(ordered) // 2]["throughput"],
        "throughput_rounds": [r["throughput"]["runs_per_second"] for r in rounds],
    }
    starts = [s for r in rounds if "latency" in r for s in r["latency"]["start_latency"]]
    calls = [s for r in rounds if "latency" in r for s in r["latency"]["trigger_call"]]
    if starts:
        out["latency_ms"] = report.latency_summary(starts)
        out["trigger_call_ms"] = report.latency_summary(calls)
        out["latency_p50_rounds"] = [
            report.latency_summary(r["latency"]["start_latency"])["p50"]
            for r in rounds
            if "latency" in r
        ]
        window = sum(r["latency"]["window"] for r in rounds if "latency" in r)
        out["latency_other_cores"] = sum(
            r["latency"]["cpu_other"] for r in rounds if "latency" in r
        ) / max(window, 1e-9)
    return out


def run_conveyor(
    args: argparse.Namespace, log_dir: Path, profile: str | None = None
) -> dict[str, Any]:
    import conveyor_side

    platform_ = conveyor_side.ConveyorPlatform(
        log_dir, launch=args.conveyor_launch, loop=args.conveyor_loop
    )
    print(f"conveyor: starting `{platform_.launch_note}` on port {platform_.port}", flush=True)
    profilers: dict[str, Any] = {}
    try:
        platform_.start()
        if profile is not None:
            import profiling

            profilers = {
                name: profiling.Recorder(
                    platform_.service.pid,
                    Path(args.profile),
                    f"conveyor-{name}-{profile}",
                    gil=profile == "gil",
                )
                for name in ("throughput", "latency")
            }
        print(f"conveyor: {args.runs} no-op runs in batches of {args.batch_size}", flush=True)
        tp = conveyor_side.throughput(
            platform_,
            args.runs,
            args.batch_size,
            timeout=args.timeout,
            profiler=profilers.get("throughput"),
        )
        print(
            f"conveyor: {tp['runs_per_second']:.0f} runs/s ({tp['completed']} completed in "
            f"{tp['seconds']:.2f} s)",
            flush=True,
        )
        raw: dict[str, Any] = {"throughput": tp, "launch": platform_.launch_note}
        if args.latency_samples:
            time.sleep(1.0)  # let it settle: latency is measured at idle
            print(f"conveyor: trigger-to-start latency, {args.latency_samples} samples", flush=True)
            raw["latency"] = conveyor_side.latency(
                platform_,
                args.latency_samples,
                warmup=args.warmup,
                profiler=profilers.get("latency"),
            )
        return raw
    finally:
        for profiler in profilers.values():
            profiler.stop()
        platform_.stop()


def run_celery(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    import celery_side

    worker = celery_side.CeleryWorker(log_dir)
    print(f"celery: starting `{worker.command}` (Redis {celery_side.REDIS_URL})", flush=True)
    try:
        worker.start()
        print(
            f"celery: {args.runs} no-op tasks enqueued in chunks of {args.batch_size}", flush=True
        )
        tp = celery_side.throughput(worker, args.runs, args.batch_size, timeout=args.timeout)
        print(
            f"celery: {tp['runs_per_second']:.0f} runs/s ({tp['completed']} completed in "
            f"{tp['seconds']:.2f} s)",
            flush=True,
        )
        raw: dict[str, Any] = {"throughput": tp, "command": worker.command}
        if args.latency_samples:
            time.sleep(1.0)
            print(f"celery: trigger-to-start latency, {args.latency_samples} samples", flush=True)
            raw["latency"] = celery_side.latency(worker, args.latency_samples, warmup=args.warmup)
        return raw
    finally:
        worker.stop()


def main(argv: list[str] | None = None) -> int:
    import durable_suite
    import fairness_suite
    import postgres_suite
    import workloads

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--suite",
        choices=["all", "throughput", "durable", "postgres", "fairness"],
        default="all",
        help="throughput: no-op throughput and start latency; durable: fan-out, limited queue, "
        "durable sleep (with DBOS); postgres: throughput, latency and writes per run on "
        "PostgreSQL (with DBOS and Procrastinate); fairness: tenants sharing 4 slots (with "
        "Celery); all: the four",
    )
    parser.add_argument(
        "--runs", type=int, default=10_000, help="no-op runs in the throughput workload"
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="runs per batch call (Conveyor's limit: 1000)"
    )
    parser.add_argument(
        "--latency-samples", type=int, default=300, help="measured single runs (0 to skip)"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="single runs before the latency samples"
    )
    parser.add_argument(
        "--only",
        choices=["conveyor", "celery", "dbos", "procrastinate"],
        help="measure one system only",
    )
    parser.add_argument(
        "--conveyor-launch",
        choices=["auto", "cli"],
        default="auto",
        help="auto: quiet platform (no line per run); cli: plain `conveyor dev`, output to a file",
    )
    parser.add_argument(
        "--conveyor-loop",
        choices=["default", "asyncio"],
        default="default",
        help="default: the event loop Conveyor picks (uvloop if installed); asyncio: hide uvloop "
        "(bench/shims/asyncio_loop) so Conveyor runs on asyncio's own loop",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every system this many times, alternating the order (median reported)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a throughput run may take at most"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the Conveyor dev process (and its executors) with py-spy during throughput",
    )
    parser.add_argument(
        "--fanout",
        type=int,
        default=workloads.FANOUT,
        help="durable: children of the fan-out parent",
    )
    parser.add_argument(
        "--limited",
        type=int,
        default=workloads.LIMITED,
        help="durable: 100 ms children in the queue of concurrency 5",
    )
    parser.add_argument(
        "--sleepers", type=int, default=workloads.SLEEPERS, help="durable: runs sleeping durably"
    )
    parser.add_argument(
        "--sleep-seconds",
        type=float,
        default=workloads.SLEEP_SECONDS,
        help="durable: how long each sleeps",
    )
    parser.add_argument(
        "--dbos-databases",
        default="postgres,sqlite",
        help=(
            "durable: DBOS system databases to measure, comma-separated (postgres, sqlite; empty: "
            "none)"
        ),
    )
    parser.add_argument(
        "--dbos-tuned-poll",
        type=float,
        default=0.05,
        help=(
            "durable: also run DBOS's limited workload with this queue/get_result polling (0: skip)"
        ),
    )
    parser.add_argument(
        "--durable-timeout",
        type=float,
        default=300.0,
        help="seconds a durable workload may take at most",
    )
    parser.add_argument(
        "--writes-runs",
        type=int,
        default=1000,
        help="postgres: no-op runs triggered one call each for the write counters (0 skips)",
    )
    parser.add_argument(
        "--pg-stat-settle",
        type=float,
        default=11.0,
        help="postgres: idle seconds before each read of the pg_stat counters (PostgreSQL flushes "
        "an idle backend's counts after 10 s)",
    )
    parser.add_argument(
        "--pg-executors", type=int, default=2, help="postgres: executors of the conveyor worker"
    )
    parser.add_argument(
        "--pg-capacity", type=int, default=500, help="postgres: capacity of the conveyor worker"
    )
    parser.add_argument(
        "--procrastinate-concurrency",
        type=int,
        default=50,
        help="postgres: --concurrency of the Procrastinate worker",
    )
    parser.add_argument(
        "--dbos-poll",
        type=float,
        default=1.0,
        help="postgres: polling interval of DBOS's queue (DBOS's default: 1 s)",
    )
    parser.add_argument(
        "--fair-backlog",
        type=int,
        default=fairness_suite.BACKLOG,
        help="fairness: runs of tenant big queued ahead of tenant small's one run",
    )
    parser.add_argument(
        "--fair-warm",
        type=int,
        default=fairness_suite.WARM,
        help="fairness: big runs taken from the queue before tenant small triggers",
    )
    parser.add_argument(
        "--fair-work-ms",
        type=float,
        default=fairness_suite.WORK_MS,
        help="fairness: milliseconds each run waits",
    )
    parser.add_argument(
        "--fair-tenants",
        type=int,
        default=fairness_suite.TENANTS,
        help="fairness: tenants of the Jain's index workload",
    )
    parser.add_argument(
        "--fair-pattern",
        default=fairness_suite.PATTERN,
        help="fairness: the tenants' backlogs, comma-separated, given in turn (tenant i gets "
        "the (i mod length)-th)",
    )
    parser.add_argument(
        "--fair-timeout",
        type=float,
        default=900.0,
        help="fairness: seconds a workload may take to drain",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the log folder (it is kept anyway on failure)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every measurement here")
    args = parser.parse_args(argv)
    if args.rounds < (0 if args.profile else 1):
        parser.error(
            "--rounds must be at least 1 (0 is allowed with --profile: profiling passes only)"
        )
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1 to 1000")
    if not set(filter(None, args.dbos_databases.split(","))) <= {"postgres", "sqlite"}:
        parser.error("--dbos-databases takes postgres, sqlite or both")

    log_dir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    tree_before = conveyor_tree()
    print(f"logs in {log_dir}", flush=True)
    raw: dict[str, list[dict[str, Any]]] = {}
    raw_durable: dict[str, list[dict[str, Any]]] = {}
    raw_postgres: dict[str, list[dict[str, Any]]] = {}
    raw_fairness: dict[str, list[dict[str, Any]]] = {}
    failed = False
    suites: list[tuple[str, list[tuple[str, Any]], dict[str, list[dict[str, Any]]]]] = []
    if args.suite in ("all", "throughput"):
        suites.append(("throughput", [("conveyor", run_conveyor), ("celery", run_celery)], raw))
    if args.suite in ("all", "durable"):
        suites.append(("durable", durable_suite.systems(args), raw_durable))
    if args.suite in ("all", "postgres"):
        suites.append(("postgres", postgres_suite.systems(args), raw_postgres))
    if args.suite in ("all", "fairness"):
        suites.append(("fairness", fairness_suite.systems(args), raw_fairness))
    for suite, systems, into in suites:
        for round_ in range(args.rounds):
            order = systems if round_ % 2 == 0 else systems[::-1]
            for name, fn in order:
                if (args.only and not name.startswith(args.only)) or failed:
                    continue
                if args.rounds > 1 or len(suites) > 1:
                    print(f"-- {suite}, round {round_ + 1} of {args.rounds}: {name}", flush=True)
                try:
                    into.setdefault(name, []).append(fn(args, log_dir))
                except Exception:
                    failed = True
                    print(f"{name}: FAILED (logs in {log_dir})", file=sys.stderr)
                    traceback.print_exc()
    if (
        args.profile
        and not failed
        and args.only in (None, "conveyor")
        and args.suite in ("all", "throughput")
    ):
        for mode in ("threads", "gil"):
            print(
                f"-- profiling pass ({mode}), not counted: py-spy into {args.profile}", flush=True
            )
            try:
                run_conveyor(args, log_dir, profile=mode)
            except Exception:
                failed = True
                traceback.print_exc()
    results = {name: summarize(r) for name, r in raw.items()}
    durable = {name: durable_suite.summarize(r) for name, r in raw_durable.items()}
    on_postgres = {name: postgres_suite.summarize(r) for name, r in raw_postgres.items()}
    fairness = {name: fairness_suite.summarize(r) for name, r in raw_fairness.items()}
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    found = versions()
    tree_after = conveyor_tree()
    stamp = time.strftime("%H:%M:%S", time.localtime(tree_after[0]))
    tree_note = (
        f"conveyor tree: newest file {tree_after[1]} ({stamp}), unchanged during the run"
        if tree_after == tree_before
        else (
            f"conveyor tree: CHANGED during the run ({tree_after[1]} at {stamp}): the figures mix "
            "code versions"
        )
    )
    print()
    print(f"{started}  ·  {command.strip()}")
    print("  ".join(f"{k} {v}" for k, v in found.items()))
    print(tree_note)
    for name, rounds in raw.items():
        print(f"{name}: {rounds[0].get('launch') or rounds[0].get('command')}")
    for name, summary in durable.items():
        print(f"{name} (durable): {summary.get('launch') or summary.get('database') or ''}")
    if on_postgres:
        import pg_counters

        print(f"postgres suite: {pg_counters.server_version()} at {pg_counters.SERVER_URL}")
    for name, summary in on_postgres.items():
        print(f"{name} (postgres): {summary['launch']}")
    for name, summary in fairness.items():
        print(f"{name} (fairness): {summary.get('launch', '')}")
    if results:
        print()
        print(report.table(results))
    if durable:
        print()
        print(report.durable_table(durable, durable_suite.sizes(args)))
    if on_postgres:
        print()
        print(
            postgres_suite.table(
                on_postgres,
                {
                    "runs": args.runs,
                    "batch_size": args.batch_size,
                    "latency_samples": args.latency_samples,
                    "writes_runs": args.writes_runs,
                },
            )
        )
    if fairness:
        print()
        print(fairness_suite.table(fairness, fairness_suite.sizes(args)))
    if args.json:
        out = {
            "date": started,
            "command": command.strip(),
            "versions": found,
            "tree": tree_note,
            "results": results,
            "raw": raw,
            "durable": durable,
            "raw_durable": raw_durable,
            "postgres": on_postgres,
            "raw_postgres": raw_postgres,
            "fairness": fairness,
            "raw_fairness": raw_fairness,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    if failed or args.keep_logs:
        print(f"logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
