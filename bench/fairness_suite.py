"""The fairness suite (bench/README.md, section 5): how a system shares its slots between tenants,
Conveyor (concurrency keys, weighted round-robin) against Celery on Redis (one queue, FIFO).

1. backlog: tenant `big` queues `--fair-backlog` (10,000) runs of `--fair-work-ms` (5) ms; once
   they are being served, tenant `small` triggers one run. How long it waits, and how many big
   runs start ahead of it.
2. tenants: `--fair-tenants` (100) tenants queue unequal backlogs (`--fair-pattern`), tenant by
   tenant; Jain's index over the first half of the starts, and each tenant's time to its first
   start.

Both systems have 4 slots in all: Conveyor's environment `concurrency_limit = 4`
(projects/fairness/pyproject.toml; the queue `fair` limits each key to 4 too), Celery's prefork
worker `--concurrency 4`. Every workload runs on fresh state; the backlog is queued while nothing
consumes it (Conveyor: the queue `fair` paused; Celery: before its worker starts), then
consumption starts (`queues.resume`; the worker's start), so each system is handed the whole
backlog in the order it was queued.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fairness_metrics as fm
from processes import Usage, wait_until
from workloads import peak_concurrency

SLOTS = 4  # Conveyor: projects/fairness/pyproject.toml; Celery: --concurrency
QUEUE = "fair"
TASK = "tenant-work"
BACKLOG = 10_000
WORK_MS = 5.0
WARM = 200  # big runs taken before the small run is triggered: the system is in its stride
TENANTS = 100
PATTERN = "100,30,10,3,1"


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    demands = fm.demands_for(args.fair_tenants, _pattern(args))
    return {
        "slots": SLOTS,
        "backlog": args.fair_backlog,
        "work_ms": args.fair_work_ms,
        "warm": args.fair_warm,
        "tenants": args.fair_tenants,
        "pattern": args.fair_pattern,
        "tenant_runs": sum(demands.values()),
        "window": sum(demands.values()) // 2,
    }


def _pattern(args: argparse.Namespace) -> list[int]:
    return [int(x) for x in args.fair_pattern.split(",") if x.strip()]


# -- Conveyor: `conveyor dev` on projects/fairness (SQLite) ---------------------------------------

PROJECT = Path(__file__).resolve().parent / "projects" / "fairness"


def _conveyor_platform(args: argparse.Namespace, log_dir: Path, workload: str) -> Any:
    import conveyor_side

    return conveyor_side.ConveyorPlatform(
        log_dir,
        launch=args.conveyor_launch,
        project=PROJECT,
        tasks=frozenset({TASK}),
        log_name=f"conveyor-fair-{workload}",
        loop=args.conveyor_loop,
    )


def _conveyor_runs(client: Any, expected: int) -> list[Any]:
    import conveyor_side

    runs = conveyor_side.all_runs(client, TASK, limit_pages=expected // 1000 + 10)
    return runs


def _conveyor_drain(client: Any, timeout: float, queued_too: bool = True) -> float:
    """Wait until no run of the queue executes (and, with `queued_too`, none is queued)."""

    def idle() -> bool:
        info = client.queues.retrieve(QUEUE)
        return not info.running and not (queued_too and info.queued)

    wait_until(idle, timeout, interval=0.2, what="Conveyor to finish every run of the queue")
    return time.time()


def _conveyor_figures(runs: list[Any]) -> tuple[list[tuple[float, float, str]], dict[str, Any]]:
    """(started, ended, tenant) of every completed run (its own stamps), and the checks."""
    done = [r for r in runs if r.status.value == "COMPLETED" and isinstance(r.output, dict)]
    own = [(r.output["started"], r.output["ended"], r.output["tenant"]) for r in done]
    keys_ok = all(r.concurrency_key == r.output["tenant"] for r in done)
    recorded = [
        (r.started_at.timestamp(), r.completed_at.timestamp())
        for r in done
        if r.started_at and r.completed_at
    ]
    return own, {
        "runs": len(runs),
        "completed": len(done),
        "not_started": sum(1 for r in runs if r.status.value == "QUEUED" and not r.started_at),
        "keys_ok": keys_ok,
        "peak_recorded": peak_concurrency(recorded) if recorded else None,
    }


def conveyor_backlog(args: argparse.Namespace, platform: Any) -> dict[str, Any]:
    client = platform.client
    backlog, ms = args.fair_backlog, args.fair_work_ms
    item = {"payload": {"tenant": "big", "ms": ms}, "options": {"concurrency_key": "big"}}
    with Usage(platform.service) as usage:
        client.queues.pause(QUEUE)
        t0 = time.time()
        for start in range(0, backlog, 1000):
            client.batch_trigger(TASK, [item] * min(1000, backlog - start))
        enqueued = time.time()
        client.queues.resume(QUEUE)
        resumed = time.time()
        wait_until(
            lambda: client.queues.retrieve(QUEUE).queued <= backlog - args.fair_warm,
            args.fair_timeout,
            interval=0.05,
            what=f"{args.fair_warm} big runs to start",
        )
        triggered = time.time()
        handle = client.trigger(TASK, {"tenant": "small", "ms": ms}, concurrency_key="small")
        queued = time.time()
        # the figures need the runs started up to the small run's start, not the whole drain:
        # once it has ended, no new run starts (the queue paused again) and those running end
        client.runs.poll(handle.id, interval=0.05, timeout=args.fair_timeout)
        client.queues.pause(QUEUE)
        seen = _conveyor_drain(client, args.fair_timeout, queued_too=False)
    runs = _conveyor_runs(client, backlog + 1)
    own, checks = _conveyor_figures(runs)
    small = [r for r in runs if r.id == handle.id]
    return _backlog_figures(
        own,
        checks,
        backlog=backlog,
        small_status=small[0].status.value if small else "missing",
        times={"t0": t0, "enqueued": enqueued, "resumed": resumed, "seen": seen},
        triggered=triggered,
        queued=queued,
        usage=usage.as_dict(),
    )


def conveyor_tenants(args: argparse.Namespace, platform: Any) -> dict[str, Any]:
    client = platform.client
    demands = fm.demands_for(args.fair_tenants, _pattern(args))
    with Usage(platform.service) as usage:
        client.queues.pause(QUEUE)
        t0 = time.time()
        for tenant, n in demands.items():
            item = {"payload": {"tenant": tenant, "ms": args.fair_work_ms}}
            item["options"] = {"concurrency_key": tenant}
            for start in range(0, n, 1000):
                client.batch_trigger(TASK, [item] * min(1000, n - start))
        enqueued = time.time()
        client.queues.resume(QUEUE)
        resumed = time.time()
        seen = _conveyor_drain(client, args.fair_timeout)
    runs = _conveyor_runs(client, sum(demands.values()))
    own, checks = _conveyor_figures(runs)
    return _tenant_figures(
        own,
        checks,
        demands,
        times={"t0": t0, "enqueued": enqueued, "resumed": resumed, "seen": seen},
        usage=usage.as_dict(),
    )


def run_conveyor(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workload, measure in (("backlog", conveyor_backlog), ("tenants", conveyor_tenants)):
        platform = _conveyor_platform(args, log_dir, workload)
        print(f"conveyor: fairness {workload}: starting `{platform.launch_note}`", flush=True)
        try:
            platform.start()
            out[workload] = measure(args, platform)
            out["launch"] = platform.launch_note + " on projects/fairness (SQLite)"
        finally:
            platform.stop()
        _say("conveyor", workload, out[workload])
    return out


# -- Celery: a prefork worker of 4 processes on Redis, one queue `fair` ------------------------


def _celery_worker(log_dir: Path, workload: str) -> Any:
    import celery_side

    # started once the backlog is queued (add_consumer on a running worker would do, but with it
    # the worker took every message of the queue at once, past its prefetch limit of 16)
    return celery_side.CeleryWorker(
        log_dir, concurrency=SLOTS, queues=QUEUE, log_name=f"celery-fair-{workload}"
    )


def _celery_consume(worker: Any) -> None:
    """Start the worker on the queued backlog (its database is not emptied first)."""
    worker.start(flush=False)


def _celery_results(worker: Any, ids: list[str], timeout: float) -> tuple[list[Any], float]:
    import celery_side

    celery_side.wait_results(worker.redis, ids, timeout)
    seen = time.time()
    return celery_side._meta(worker.redis, ids), seen


def _celery_figures(metas: list[Any]) -> tuple[list[tuple[float, float, str]], dict[str, Any]]:
    done = [m for m in metas if m is not None and m["status"] == "SUCCESS"]
    own = [(m["result"]["started"], m["result"]["ended"], m["result"]["tenant"]) for m in done]
    return own, {"runs": len(metas), "completed": len(done), "keys_ok": True}


def celery_backlog(args: argparse.Namespace, worker: Any) -> dict[str, Any]:
    from celery_app import app, tenant_work

    backlog, ms = args.fair_backlog, args.fair_work_ms
    ids: list[str] = []
    worker.redis.flushdb()
    with Usage(worker.service, redis_client=worker.redis) as usage:
        t0 = time.time()
        for start in range(0, backlog, 1000):
            with app.producer_or_acquire() as producer:
                ids.extend(
                    tenant_work.apply_async(("big", ms), queue=QUEUE, producer=producer).id
                    for _ in range(min(1000, backlog - start))
                )
        enqueued = time.time()
        _celery_consume(worker)
        resumed = time.time()
        wait_until(
            lambda: worker.redis.llen(QUEUE) <= backlog - args.fair_warm,
            args.fair_timeout,
            interval=0.05,
            what=f"{args.fair_warm} big tasks to be taken",
        )
        triggered = time.time()
        small_id = tenant_work.apply_async(("small", ms), queue=QUEUE).id
        queued = time.time()
        metas, seen = _celery_results(worker, [*ids, small_id], args.fair_timeout)
    own, checks = _celery_figures(metas)
    return _backlog_figures(
        own,
        checks,
        backlog=backlog,
        small_status=metas[-1]["status"] if metas[-1] else "missing",
        times={"t0": t0, "enqueued": enqueued, "resumed": resumed, "seen": seen},
        triggered=triggered,
        queued=queued,
        usage=usage.as_dict(),
    )


def celery_tenants(args: argparse.Namespace, worker: Any) -> dict[str, Any]:
    from celery_app import app, tenant_work

    demands = fm.demands_for(args.fair_tenants, _pattern(args))
    ids: list[str] = []
    worker.redis.flushdb()
    with Usage(worker.service, redis_client=worker.redis) as usage:
        t0 = time.time()
        with app.producer_or_acquire() as producer:
            for tenant, n in demands.items():
                ids.extend(
                    tenant_work.apply_async(
                        (tenant, args.fair_work_ms), queue=QUEUE, producer=producer
                    ).id
                    for _ in range(n)
                )
        enqueued = time.time()
        _celery_consume(worker)
        resumed = time.time()
        metas, seen = _celery_results(worker, ids, args.fair_timeout)
    own, checks = _celery_figures(metas)
    return _tenant_figures(
        own,
        checks,
        demands,
        times={"t0": t0, "enqueued": enqueued, "resumed": resumed, "seen": seen},
        usage=usage.as_dict(),
    )


def run_celery(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workload, measure in (("backlog", celery_backlog), ("tenants", celery_tenants)):
        worker = _celery_worker(log_dir, workload)
        print(
            f"celery: fairness {workload}: queueing, then starting `{worker.command}`", flush=True
        )
        try:
            out[workload] = measure(args, worker)
            out["launch"] = f"{worker.command}, started once the backlog is queued"
        finally:
            worker.stop()
        _say("celery", workload, out[workload])
    return out


def systems(args: argparse.Namespace) -> list[tuple[str, Callable[..., dict[str, Any]]]]:
    return [("conveyor", run_conveyor), ("celery", run_celery)]


# -- figures, the same for both systems -------------------------------------------------------


def _problem(own: list[tuple[float, float, str]], checks: dict[str, Any], n: int) -> str | None:
    """What went wrong: a run that started and did not complete (Conveyor's backlog workload
    leaves `not_started` runs queued on purpose), a tenant mixed up, or more than SLOTS at once."""
    issues = []
    if checks["completed"] + checks.get("not_started", 0) != n or checks["runs"] != n:
        issues.append(f"{checks['completed']} of {n} runs completed")
    if not checks["keys_ok"]:
        issues.append("a run's concurrency key is not its tenant")
    peak = max(
        [peak_concurrency([(s, e) for s, e, _ in own]), checks.get("peak_recorded") or 0],
        default=0,
    )
    if peak > SLOTS:
        issues.append(f"{peak} ran at once (slots {SLOTS})")
    return "; ".join(issues) or None


def _span(own: list[tuple[float, float, str]], times: dict[str, float]) -> dict[str, Any]:
    first = min((s for s, _, _ in own), default=None)
    last = max((e for _, e, _ in own), default=None)
    drain = (last - first) if first is not None and last is not None else None
    return {
        "enqueue_seconds": times["enqueued"] - times["t0"],
        "first_start_after_resume": (first - times["resumed"]) if first is not None else None,
        "drain_seconds": drain,
        "drain_runs_per_second": len(own) / drain if drain else None,
        "peak_own": peak_concurrency([(s, e) for s, e, _ in own]),
    }


def _backlog_figures(
    own: list[tuple[float, float, str]],
    checks: dict[str, Any],
    *,
    backlog: int,
    small_status: str,
    times: dict[str, float],
    triggered: float,
    queued: float,
    usage: dict[str, Any],
) -> dict[str, Any]:
    big = [s for s, _, t in own if t == "big"]
    small = [s for s, _, t in own if t == "small"]
    out: dict[str, Any] = {
        **checks,
        **_span(own, times),
        "small_status": small_status,
        "trigger_call_ms": (queued - triggered) * 1000,
        **usage,
    }
    out["problem"] = _problem(own, checks, backlog + 1)
    if small:
        out.update(fm.behind_backlog(big, small[0], triggered, queued, backlog))
        out["within_one_turn"] = out["big_ahead"] < SLOTS
    elif not out["problem"]:
        out["problem"] = f"the small run did not complete ({small_status})"
    return out


def _tenant_figures(
    own: list[tuple[float, float, str]],
    checks: dict[str, Any],
    demands: dict[str, int],
    *,
    times: dict[str, float],
    usage: dict[str, Any],
) -> dict[str, Any]:
    starts = fm.ordered((s, t) for s, _, t in own)
    total = sum(demands.values())
    window = total // 2
    out: dict[str, Any] = {**checks, **_span(own, times), **usage}
    out["problem"] = _problem(own, checks, total)
    out.update(fm.window_figures(starts, demands, window))
    if len(starts) >= window and window:
        out["window_seconds"] = starts[window - 1][0] - starts[0][0]
    out.update(fm.first_start_figures(starts, list(demands)))
    return out


def _say(system: str, workload: str, fig: dict[str, Any]) -> None:
    if fig.get("problem"):
        print(f"{system}: fairness {workload}: FAILED: {fig['problem']}", flush=True)
    elif workload == "backlog":
        print(
            f"{system}: fairness backlog: the small run waited {fig['wait_ms']:.1f} ms, "
            f"{fig['big_ahead']} big runs started ahead of it after it was queued "
            f"({fig['big_queued_at_trigger']} were queued at its trigger)",
            flush=True,
        )
    else:
        print(
            f"{system}: fairness tenants: Jain {fig['jain_max_min']:.3f} over the first "
            f"{fig['window_starts']} starts, time to first start p50 {fig['ttfs_p50_ms']:.0f} ms "
            f"p99 {fig['ttfs_p99_ms']:.0f} ms",
            flush=True,
        )


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per workload the median round (backlog: by the small run's wait; tenants: by Jain's
    index), or a failed round if any; every round's key figure."""
    out: dict[str, Any] = {"rounds": {}}
    keys = {"backlog": "wait_ms", "tenants": "jain_max_min"}
    for workload, key in keys.items():
        measured = [r[workload] for r in rounds if workload in r]
        if not measured:
            continue
        failed = [f for f in measured if f.get("problem")]
        ordered = sorted(measured, key=lambda f: f.get(key) or 0.0)
        out[workload] = failed[0] if failed else ordered[len(ordered) // 2]
        out["rounds"][workload] = [f.get(key) for f in measured]
    if rounds and "launch" in rounds[0]:
        out["launch"] = rounds[0]["launch"]
    return out


def _ratio(a: float | None, b: float | None) -> str:
    """a / b to three significant figures (the waits differ by orders of magnitude)."""
    if a is None or not b:
        return ""
    return f"{a / b:.3g}x"


def table(results: dict[str, dict[str, Any]], size: dict[str, Any]) -> str:
    """Conveyor and Celery as columns, then Conveyor / Celery where a ratio means something."""
    present = [k for k in ("conveyor", "celery") if k in results]
    both = len(present) == 2
    rows: list[list[str]] = []

    def ok(name: str, workload: str) -> bool:
        fig = results[name].get(workload)
        return bool(fig) and not fig.get("problem")

    def add(
        label: str, workload: str, key: str, fmt: Callable[[Any], str], ratio: bool = False
    ) -> None:
        values = [(results[k].get(workload) or {}).get(key) for k in present]
        row = [label]
        for name, v in zip(present, values, strict=True):
            fig = results[name].get(workload) or {}
            if fig.get("problem"):
                row.append(f"**FAILED**: {fig['problem']}" if key == "completed" else "-")
            else:
                row.append(fmt(v) if v is not None else "-")
        if both:
            good = ratio and all(ok(k, workload) for k in present)
            row.append(_ratio(values[0], values[1]) if good else "")
        rows.append(row)

    def section(title: str) -> None:
        rows.append([f"**{title}**", *[""] * len(present), *([""] if both else [])])

    f0 = lambda v: f"{v:,.0f}"  # noqa: E731
    f1 = lambda v: f"{v:,.1f}"  # noqa: E731
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    ms = lambda v: f"{v:,.1f} ms"  # noqa: E731
    sec = lambda v: f"{v:.2f} s"  # noqa: E731
    yes = lambda v: "yes" if v else "**no**"  # noqa: E731

    section(
        f"1. one run of tenant `small` behind {size['backlog']:,} runs of tenant `big` "
        f"({size['work_ms']:g} ms each, {size['slots']} slots)"
    )
    add("  runs completed", "backlog", "completed", f0)
    add("  runs left queued, never started (see README)", "backlog", "not_started", f0)
    add("  big runs still queued when `small` triggered", "backlog", "big_queued_at_trigger", f0)
    add("  **`small` waited, trigger → start**", "backlog", "wait_ms", ms, ratio=True)
    add(
        "  **big runs started after `small` was queued, before it started**",
        "backlog",
        "big_ahead",
        f0,
    )
    add(f"  within one slot's turn (fewer than {size['slots']})", "backlog", "within_one_turn", yes)
    add(
        "  big runs started while the trigger call was in flight",
        "backlog",
        "big_racing_trigger",
        f0,
    )
    add("  trigger call", "backlog", "trigger_call_ms", ms)
    add("  drain pace, first start to last end (runs/s)", "backlog", "drain_runs_per_second", f0)
    add("  time to queue the backlog", "backlog", "enqueue_seconds", sec)
    add("  peak runs at once (own stamps)", "backlog", "peak_own", f0)
    add("  CPU seconds of every other process (noise)", "backlog", "cpu_other", f1)

    section(
        f"2. {size['tenants']} tenants, backlogs {size['pattern']} in turn ("
        f"{size['tenant_runs']:,} runs), queued tenant by tenant; window: the first "
        f"{size['window']:,} starts"
    )
    add("  runs completed", "tenants", "completed", f0)
    add(
        "  **Jain's index, starts / max-min fair share** (1.0 = fair)",
        "tenants",
        "jain_max_min",
        f3,
        ratio=True,
    )
    add("  tenants with a start in the window", "tenants", "tenants_served_in_window", f0)
    add("  lowest starts / fair share of a tenant", "tenants", "min_share", f3)
    add("  highest starts / fair share of a tenant", "tenants", "max_share", f3)
    add("  **time to first start, p50** (from the first start)", "tenants", "ttfs_p50_ms", ms, True)
    add("  **time to first start, p99**", "tenants", "ttfs_p99_ms", ms, ratio=True)
    add("  starts before a tenant's first, p50", "tenants", "ahead_p50", f1, ratio=True)
    add("  starts before a tenant's first, p99", "tenants", "ahead_p99", f1, ratio=True)
    add("  window length", "tenants", "window_seconds", sec)
    add("  drain pace, first start to last end (runs/s)", "tenants", "drain_runs_per_second", f0)
    add("  peak runs at once (own stamps)", "tenants", "peak_own", f0)
    add("  CPU seconds of every other process (noise)", "tenants", "cpu_other", f1)
    if any(len(v) > 1 for r in results.values() for v in r.get("rounds", {}).values()):
        add_rounds = [
            ("  small's wait of each round (ms)", "backlog"),
            ("  Jain's index of each round", "tenants"),
        ]
        for label, workload in add_rounds:
            rows.append(
                [
                    label,
                    *(
                        ", ".join(
                            f"{x:.3f}" if x is not None else "-"
                            for x in results[k].get("rounds", {}).get(workload, [])
                        )
                        for k in present
                    ),
                    *([""] if both else []),
                ]
            )
    header = ["", *present, *(["conveyor / celery"] if both else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
