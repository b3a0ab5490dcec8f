"""The durable suite (workloads.py) for each system: every workload on a freshly started system
(fresh state), measured, and the system stopped before the next workload starts.

    Conveyor  `conveyor dev --quiet` on projects/durable (its .conveyor/ deleted before and after)
    Celery    a prefork worker on Redis: --concurrency 2 for fan-out and sleep (as in the
              throughput workload), --concurrency 5 --queues five,celery for the limited one
    DBOS      dbos_app.py on a fresh system database, Postgres and/or SQLite
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import workloads


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "fanout": args.fanout,
        "limited": args.limited,
        "limit": workloads.LIMIT,
        "ideal_limited": args.limited * workloads.WORK_SECONDS / workloads.LIMIT,
        "sleepers": args.sleepers,
        "sleep_seconds": args.sleep_seconds,
        "tuned_poll": args.dbos_tuned_poll,
    }


def _check(args: argparse.Namespace, workload: str, figures: dict[str, Any]) -> dict[str, Any]:
    n = {"fanout": args.fanout, "sleep": args.sleepers}.get(workload, args.limited)
    figures["problem"] = workloads.problem(workload, figures, n)
    return figures


def _say(system: str, workload: str, figures: dict[str, Any]) -> None:
    if figures.get("problem"):
        print(
            f"{system}: {workload}: FAILED: {figures['problem']} ({figures['seconds']:.2f} s)",
            flush=True,
        )
        return
    extra = ""
    if "own_peak" in figures:
        extra = f", peak concurrency {figures.get('recorded_peak', figures.get('own_peak'))}"
    if workload == "sleep":
        extra = f", peak RSS {figures['peak_rss'] / 1024**2:.0f} MB"
    print(
        f"{system}: {workload}: {figures['seconds']:.2f} s ({figures.get('children_ok')} children "
        f"ok{extra})",
        flush=True,
    )


def run_conveyor(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    import conveyor_side

    out: dict[str, Any] = {}
    steps = [
        ("fanout", lambda p: conveyor_side.fanout(p, args.fanout, timeout=args.durable_timeout)),
        (
            "limited",
            lambda p: conveyor_side.limited(
                p, args.limited, workloads.LIMIT, timeout=args.durable_timeout
            ),
        ),
        (
            "sleep",
            lambda p: conveyor_side.durable_sleep(
                p, args.sleepers, args.sleep_seconds, timeout=args.durable_timeout
            ),
        ),
    ]
    for workload, measure in steps:
        platform_ = conveyor_side.ConveyorPlatform(
            log_dir,
            launch=args.conveyor_launch,
            project=conveyor_side.DURABLE_PROJECT,
            tasks=conveyor_side.DURABLE_TASKS,
            log_name=f"conveyor-{workload}",
            loop=args.conveyor_loop,
        )
        print(
            f"conveyor: {workload}: starting `{platform_.launch_note}` on projects/durable",
            flush=True,
        )
        try:
            platform_.start()
            out[workload] = _check(args, workload, measure(platform_))
            out["launch"] = platform_.launch_note
        finally:
            platform_.stop()
        _say("conveyor", workload, out[workload])
    return out


def run_celery(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    import celery_side

    out: dict[str, Any] = {}
    steps = [
        (
            "fanout",
            2,
            None,
            lambda w: celery_side.fanout(w, args.fanout, timeout=args.durable_timeout),
        ),
        (
            "limited",
            workloads.LIMIT,
            "five,celery",
            lambda w: celery_side.limited(
                w, args.limited, workloads.LIMIT, timeout=args.durable_timeout
            ),
        ),
        (
            "sleep",
            2,
            None,
            lambda w: celery_side.countdown_sleep(
                w, args.sleepers, args.sleep_seconds, timeout=args.durable_timeout
            ),
        ),
    ]
    for workload, concurrency, queues, measure in steps:
        worker = celery_side.CeleryWorker(
            log_dir, concurrency=concurrency, queues=queues, log_name=f"celery-{workload}"
        )
        print(f"celery: {workload}: starting `{worker.command}`", flush=True)
        try:
            worker.start()
            out[workload] = _check(args, workload, measure(worker))
            out[workload]["command"] = worker.command
            out["launch"] = "; ".join(
                filter(None, [out.get("launch"), f"{workload}: {worker.command}"])
            )
        finally:
            worker.stop()
        _say("celery", workload, out[workload])
    return out


def run_dbos(backend: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    import dbos_side

    name = f"dbos-{backend}"
    out: dict[str, Any] = {"database": dbos_side.server_version(backend)}
    steps = [
        (
            "fanout",
            lambda: dbos_side.fanout(backend, log_dir, args.fanout, timeout=args.durable_timeout),
        ),
        (
            "limited",
            lambda: dbos_side.limited(
                backend,
                log_dir,
                args.limited,
                workloads.LIMIT,
                poll=dbos_side.DEFAULT_POLL,
                timeout=args.durable_timeout,
            ),
        ),
    ]
    if args.dbos_tuned_poll:
        steps.append(
            (
                "limited-tuned",
                lambda: dbos_side.limited(
                    backend,
                    log_dir,
                    args.limited,
                    workloads.LIMIT,
                    poll=args.dbos_tuned_poll,
                    timeout=args.durable_timeout,
                ),
            )
        )
    steps.append(
        (
            "sleep",
            lambda: dbos_side.durable_sleep(
                backend, log_dir, args.sleepers, args.sleep_seconds, timeout=args.durable_timeout
            ),
        )
    )
    for workload, measure in steps:
        print(
            f"{name}: {workload}: starting bench/dbos_app.py on a fresh {out['database']} database",
            flush=True,
        )
        out[workload] = _check(args, workload, measure())
        _say(name, workload, out[workload])
    return out


def systems(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(name, runner) of every system the durable suite measures, in the order of round 1."""
    found: list[tuple[str, Any]] = [("conveyor", run_conveyor), ("celery", run_celery)]
    for backend in [b for b in args.dbos_databases.split(",") if b]:
        found.append((f"dbos-{backend}", lambda a, d, backend=backend: run_dbos(backend, a, d)))
    return found


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's figures: per workload, the median round by `seconds` (a failed round, if
    any, instead: a failure is never hidden by a median); every round's seconds."""
    out: dict[str, Any] = {"rounds": {}}
    for workload in ("fanout", "limited", "limited-tuned", "sleep"):
        measured = [r[workload] for r in rounds if workload in r]
        if not measured:
            continue
        ordered = sorted(measured, key=lambda f: f["seconds"])
        failed = [f for f in measured if f.get("problem")]
        out[workload] = failed[0] if failed else ordered[len(ordered) // 2]
        out["rounds"][workload] = [f["seconds"] for f in measured]
    for key in ("launch", "database"):
        if rounds and key in rounds[0]:
            out[key] = rounds[0][key]
    return out
