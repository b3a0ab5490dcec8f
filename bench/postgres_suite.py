"""The postgres suite: Conveyor, DBOS and Procrastinate on the same PostgreSQL server, one at a
time, each on a fresh database of its own, the same workloads measured the same way:

1. throughput: `runs` no-op runs triggered in batches; first trigger call to last completion.
2. latency: one `stamp` run at a time, at idle; the task's own time.time() at start minus the
   client's just before the trigger call.
3. writes: PostgreSQL's counters of the system's database (pg_counters.py) around the throughput
   batches, and around `writes_runs` no-op runs triggered one call each; and at idle.

Every system offers the same small surface (ConveyorServer, DBOSQueueWorker,
ProcrastinateWorker): start, stop, trigger_noops (batches), trigger_noop (one call), pending
(anything queued or running), noop_runs (completed?, started, completed of every no-op run, as
the system recorded them) and stamp (one latency sample).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pg_counters
import report
from processes import GroupUsage, drain_rate, wait_until

SYSTEMS = [
    ("conveyor", "Conveyor"),
    ("dbos", "DBOS"),
    ("dbos-tuned", "DBOS (tuned poll)"),
    ("procrastinate", "Procrastinate"),
]


def _make(name: str, args: argparse.Namespace, log_dir: Path) -> Any:
    if name == "conveyor":
        import conveyor_server_side

        return conveyor_server_side.ConveyorServer(
            log_dir, executors=args.pg_executors, capacity=args.pg_capacity
        )
    if name.startswith("dbos"):
        import dbos_queue_side

        poll = args.dbos_tuned_poll if name == "dbos-tuned" else args.dbos_poll
        return dbos_queue_side.DBOSQueueWorker(log_dir, poll=poll, label=name)
    import procrastinate_side

    return procrastinate_side.ProcrastinateWorker(
        log_dir, concurrency=args.procrastinate_concurrency
    )


def _wait_done(system: Any, timeout: float) -> float:
    wait_until(
        lambda: not system.pending(),
        timeout,
        interval=0.2,
        what=f"{system.name} to finish every run",
    )
    return time.time()


def throughput(system: Any, runs: int, batch_size: int, timeout: float) -> dict[str, Any]:
    with GroupUsage(system.services) as usage:
        t0 = time.time()
        system.trigger_noops(runs, batch_size)
        enqueued = time.time()
        seen = _wait_done(system, timeout)
    recorded = system.noop_runs()
    completed_at = [c for ok, _, c in recorded if ok and c is not None]
    started_at = [s for _, s, _ in recorded if s is not None]
    completed = sum(1 for ok, _, _ in recorded if ok)
    last = max(completed_at) if completed_at else seen
    return {
        "runs": runs,
        "completed": completed,
        "enqueue_seconds": enqueued - t0,
        "seconds": last - t0,
        "observed_seconds": seen - t0,
        "first_start_after": (min(started_at) - t0) if started_at else None,
        "drain_runs_per_second": drain_rate(completed_at, enqueued, last),
        "runs_per_second": completed / (last - t0),
        **usage.as_dict(),
    }


def latency(
    system: Any,
    samples: int,
    warmup: int,
    gap: float = 0.02,
    poll: float = 0.01,
    timeout: float = 30.0,
) -> dict[str, Any]:
    starts: list[float] = []
    calls: list[float] = []
    with GroupUsage(system.services) as usage:
        for i in range(warmup + samples):
            before = time.time()
            returned, started = system.stamp(poll, timeout)
            if i >= warmup:
                starts.append(started - before)
                calls.append(returned - before)
            time.sleep(gap)
    return {"start_latency": starts, "trigger_call": calls, **usage.as_dict()}


def _per_run(delta: dict[str, float], n: int, idle: dict[str, float]) -> dict[str, float]:
    """Counter deltas per run; `*_net` take out what the system commits and writes at idle
    (`idle`, per second) over the same window (the window includes the settle time)."""
    out = {
        "n": n,
        "window": delta["window"],
        **{
            k: delta[k] / n
            for k in ("rows", "inserted", "updated", "deleted", "commits", "rollbacks")
        },
    }
    out["commits_net"] = (delta["commits"] - idle["commits_per_second"] * delta["window"]) / n
    out["rows_net"] = (delta["rows"] - idle["rows_per_second"] * delta["window"]) / n
    return out


def run_system(name: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """Start `name` on a fresh database, measure idle, throughput (with its writes), latency,
    single-trigger writes; stop it (always) and drop its database."""
    system = _make(name, args, log_dir)
    settle = args.pg_stat_settle
    print(f"{name}: starting {system.note} on {system.database}", flush=True)
    out: dict[str, Any] = {"launch": system.note}
    try:
        system.start()
        idle_from = pg_counters.snapshot(system.database, settle)
        idle_to = pg_counters.snapshot(system.database, settle)
        idle = idle_to.minus(idle_from)
        out["idle"] = {
            "rows_per_second": idle["rows"] / idle["window"],
            "commits_per_second": idle["commits"] / idle["window"],
        }
        print(f"{name}: {args.runs} no-op runs in batches of {args.batch_size}", flush=True)
        tp = throughput(system, args.runs, args.batch_size, args.timeout)
        after_tp = pg_counters.snapshot(system.database, settle)
        out["throughput"] = tp
        out["writes_batch"] = _per_run(after_tp.minus(idle_to), args.runs, out["idle"])
        print(
            f"{name}: {tp['runs_per_second']:.0f} runs/s ({tp['completed']} of {args.runs} "
            f"completed in {tp['seconds']:.2f} s); {out['writes_batch']['rows']:.2f} rows and "
            f"{out['writes_batch']['commits']:.2f} commits per run",
            flush=True,
        )
        before_single = after_tp
        if args.latency_samples:
            time.sleep(1.0)
            print(f"{name}: trigger-to-start latency, {args.latency_samples} samples", flush=True)
            out["latency"] = latency(system, args.latency_samples, args.warmup)
            p = report.latency_summary(out["latency"]["start_latency"])
            print(f"{name}: latency p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms", flush=True)
            before_single = pg_counters.snapshot(system.database, settle)
        if args.writes_runs:
            print(
                f"{name}: {args.writes_runs} no-op runs, one trigger call each, for the write "
                "counters",
                flush=True,
            )
            for _ in range(args.writes_runs):
                system.trigger_noop()
            _wait_done(system, args.timeout)
            after = pg_counters.snapshot(system.database, settle)
            out["writes_single"] = _per_run(
                after.minus(before_single), args.writes_runs, out["idle"]
            )
            done = sum(1 for ok, _, _ in system.noop_runs() if ok)
            out["writes_single"]["completed"] = done - tp["completed"]
            print(
                f"{name}: {out['writes_single']['rows']:.2f} rows and "
                f"{out['writes_single']['commits']:.2f} commits per run",
                flush=True,
            )
        return out
    finally:
        system.stop()


def systems(
    args: argparse.Namespace,
) -> list[tuple[str, Callable[[argparse.Namespace, Path], dict[str, Any]]]]:
    names = (
        ["conveyor", "dbos"] + (["dbos-tuned"] if args.dbos_tuned_poll else []) + ["procrastinate"]
    )
    return [(n, functools.partial(run_system, n)) for n in names]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by throughput; latency samples pooled; each write figure's median."""
    ordered = sorted(rounds, key=lambda r: r["throughput"]["runs_per_second"])
    out: dict[str, Any] = {
        "throughput": ordered[len(ordered) // 2]["throughput"],
        "launch": rounds[0]["launch"],
        "throughput_rounds": [r["throughput"]["runs_per_second"] for r in rounds],
    }
    starts = [s for r in rounds if "latency" in r for s in r["latency"]["start_latency"]]
    if starts:
        out["latency_ms"] = report.latency_summary(starts)
        out["trigger_call_ms"] = report.latency_summary(
            [s for r in rounds if "latency" in r for s in r["latency"]["trigger_call"]]
        )
    for key in ("writes_batch", "writes_single", "idle"):
        measured = [r[key] for r in rounds if key in r]
        if measured:
            out[key] = {k: _median([m[k] for m in measured]) for k in measured[0]}
    return out


def table(results: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> str:
    """Systems as columns, then Conveyor / each other system."""
    present = [(key, label) for key, label in SYSTEMS if key in results]
    others = [(key, label) for key, label in present if key != "conveyor"]
    rows: list[list[str]] = []

    def ok(fig: dict[str, Any]) -> bool:
        tp: dict[str, Any] = fig.get("throughput") or {}
        return bool(tp) and tp["completed"] >= tp["runs"]

    def add(
        label: str,
        fmt: Callable[[Any], str],
        key: Callable[[dict[str, Any]], Any],
        ratio: bool = False,
    ) -> None:
        values = [key(results[k]) for k, _ in present]
        row = [label, *(fmt(v) if v is not None else "-" for v in values)]
        if "conveyor" in results:
            base = key(results["conveyor"])
            row += [
                (
                    report._ratio(base, v)
                    if ratio and ok(results["conveyor"]) and ok(results[k])
                    else ""
                )
                for (k, _), v in zip(present, values, strict=True)
                if k != "conveyor"
            ]
        rows.append(row)

    def section(title: str) -> None:
        rows.append(
            [
                f"**{title}**",
                *[""] * len(present),
                *([""] * len(others) if "conveyor" in results else []),
            ]
        )

    def get(*path: str) -> Callable[[dict[str, Any]], Any]:
        def read(fig: dict[str, Any]) -> Any:
            value: Any = fig
            for part in path:
                if not isinstance(value, dict) or part not in value:
                    return None
                value = value[part]
            return value

        return read

    f0 = lambda v: f"{v:.0f}"  # noqa: E731
    f2 = lambda v: f"{v:.2f}"  # noqa: E731
    sec = lambda v: f"{v:.2f} s"  # noqa: E731
    ms = lambda v: f"{v:.2f} ms"  # noqa: E731

    section(
        f"1. no-op throughput: {sizes['runs']:,} runs triggered in batches of "
        f"{sizes['batch_size']:,}"
    )
    add(
        "**runs/s** (first trigger call to last completion)",
        f0,
        get("throughput", "runs_per_second"),
        ratio=True,
    )
    add(
        "  runs completed (no ratio unless all did)",
        lambda v: f"{v[0]:,}" if v[0] >= v[1] else f"**FAILED**: {v[0]:,} of {v[1]:,}",
        lambda fig: (
            fig.get("throughput") and (fig["throughput"]["completed"], fig["throughput"]["runs"])
        ),
    )
    add(
        "  pace after the last trigger call returned (runs/s)",
        f0,
        get("throughput", "drain_runs_per_second"),
        ratio=True,
    )
    add("  time to last completion", sec, get("throughput", "seconds"))
    add("  time to trigger all", sec, get("throughput", "enqueue_seconds"))
    add("  first run started after", sec, get("throughput", "first_start_after"))
    add(
        "  CPU seconds of the system's processes",
        lambda v: f"{v:.1f} s",
        get("throughput", "cpu"),
        ratio=True,
    )
    add(
        "  CPU seconds of the benchmark client",
        lambda v: f"{v:.1f} s",
        get("throughput", "cpu_client"),
    )
    add(
        "  CPU seconds of every other process (PostgreSQL, and noise)",
        lambda v: f"{v:.1f} s",
        get("throughput", "cpu_other"),
    )
    if any(len(r.get("throughput_rounds", [])) > 1 for r in results.values()):
        add(
            "  runs/s of each round (the median round is shown)",
            lambda v: ", ".join(f"{x:.0f}" for x in v),
            get("throughput_rounds"),
        )

    section(
        f"2. trigger-to-start latency at idle, one run at a time ({sizes['latency_samples']} "
        "samples)"
    )
    for q in ("p50", "p90", "p99"):
        add(f"  {'**' + q + '**' if q != 'p90' else q}", ms, get("latency_ms", q), ratio=True)
    add("  trigger call returns (p50)", ms, get("trigger_call_ms", "p50"))

    section("3. PostgreSQL writes per run (the system's database; pg_stat counters)")
    add(
        f"  **rows written per run**, batches of {sizes['batch_size']:,} (ins + upd + del)",
        f2,
        get("writes_batch", "rows"),
        ratio=True,
    )
    add(
        "    inserted / updated / deleted",
        lambda v: f"{v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}",
        lambda fig: (
            fig.get("writes_batch")
            and (
                fig["writes_batch"]["inserted"],
                fig["writes_batch"]["updated"],
                fig["writes_batch"]["deleted"],
            )
        ),
    )
    add(
        "  **transactions committed per run**, batches",
        f2,
        get("writes_batch", "commits"),
        ratio=True,
    )
    add(
        "    net of the idle rate over the same window",
        f2,
        get("writes_batch", "commits_net"),
        ratio=True,
    )
    add(
        f"  **rows written per run**, {sizes['writes_runs']:,} runs of one trigger call each",
        f2,
        get("writes_single", "rows"),
        ratio=True,
    )
    add(
        "    inserted / updated / deleted",
        lambda v: f"{v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}",
        lambda fig: (
            fig.get("writes_single")
            and (
                fig["writes_single"]["inserted"],
                fig["writes_single"]["updated"],
                fig["writes_single"]["deleted"],
            )
        ),
    )
    add(
        "  **transactions committed per run**, one trigger call each",
        f2,
        get("writes_single", "commits"),
        ratio=True,
    )
    add(
        "    net of the idle rate over the same window",
        f2,
        get("writes_single", "commits_net"),
        ratio=True,
    )
    add(
        "  transactions rolled back per run, one trigger call each",
        f2,
        get("writes_single", "rollbacks"),
    )
    add("  at idle: rows written per second", f2, get("idle", "rows_per_second"))
    add("  at idle: transactions committed per second", f2, get("idle", "commits_per_second"))
    add("  window of each count (workload + settle)", sec, get("writes_single", "window"))

    header = ["", *[label for _, label in present]]
    if "conveyor" in results:
        header += [f"Conveyor / {label}" for _, label in others]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
