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

    schedules.py                 the command and its table
    schedules_window.py          observed minutes, CPU window, one system's figures
    schedules_conveyor_side.py   conveyor server, the schedules, the runs watched QUEUED
    schedules_beat_side.py       celery beat (beat_app.py), its messages counted in Redis
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import pg_counters  # noqa: E402
from run import conveyor_tree, versions  # noqa: E402
from schedules_beat_side import run_beat  # noqa: E402
from schedules_conveyor_side import run_conveyor  # noqa: E402


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
