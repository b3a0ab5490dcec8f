"""Turning measurements into the figures the README promises: percentiles and a markdown table."""

from __future__ import annotations

import statistics
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, mean, min and max."""
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "mean": statistics.fmean(ms) if ms else float("nan"), "min": min(ms, default=float("nan")),
            "max": max(ms, default=float("nan"))}


def _mb(value: float) -> str:
    return f"{value / 1024**2:.0f} MB"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return ""
    return f"{a / b:.2f}x"


def table(results: dict[str, Any]) -> str:
    """Conveyor and Celery side by side (either may be missing)."""
    cv = results.get("conveyor", {})
    ce = results.get("celery", {})
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, f: Any, key: Any, ratio: bool = False) -> None:
        a = key(cv) if cv else None
        b = key(ce) if ce else None
        rows.append((label, f(a) if a is not None else "-", f(b) if b is not None else "-",
                     _ratio(a, b) if ratio else ""))

    tp = lambda side: side.get("throughput")  # noqa: E731
    lat = lambda side: side.get("latency_ms")  # noqa: E731
    call = lambda side: side.get("trigger_call_ms")  # noqa: E731
    add("no-op throughput (runs/s, first trigger to last completion)", lambda v: f"{v:.0f}",
        lambda s: tp(s) and tp(s)["runs_per_second"], ratio=True)
    add("  pace after the last trigger call returned (runs/s; the client no longer competing)",
        lambda v: f"{v:.0f}", lambda s: tp(s) and tp(s).get("drain_runs_per_second"), ratio=True)
    add("time to last completion", lambda v: f"{v:.2f} s", lambda s: tp(s) and tp(s)["seconds"])
    add("time until seen done by polling", lambda v: f"{v:.2f} s", lambda s: tp(s) and tp(s)["observed_seconds"])
    add("time to enqueue all runs", lambda v: f"{v:.2f} s", lambda s: tp(s) and tp(s)["enqueue_seconds"])
    add("runs completed", lambda v: f"{v}", lambda s: tp(s) and tp(s)["completed"])
    add("  of which by the time the last trigger call returned", lambda v: f"{v}",
        lambda s: tp(s) and tp(s).get("done_by_enqueue_end"))
    add("CPU seconds: platform / worker processes", lambda v: f"{v:.1f} s", lambda s: tp(s) and tp(s).get("cpu"))
    add("  of which the main process (Conveyor: dev process; Celery: main worker process)",
        lambda v: f"{v:.1f} s", lambda s: tp(s) and tp(s).get("cpu_main"))
    add("CPU ms per 1,000 runs: platform / worker processes", lambda v: f"{v:.0f} ms",
        lambda s: tp(s) and tp(s).get("cpu") is not None and 1e6 * tp(s)["cpu"] / max(tp(s)["runs"], 1), ratio=True)
    add("CPU seconds: Redis", lambda v: f"{v:.1f} s", lambda s: tp(s) and tp(s).get("cpu_redis"))
    add("CPU seconds: the benchmark client", lambda v: f"{v:.1f} s", lambda s: tp(s) and tp(s).get("cpu_client"))
    add("CPU of other processes on the machine during throughput (noise)",
        lambda v: f"{v[0]:.1f} s ({v[1]:.2f} cores)",
        lambda s: tp(s) and (tp(s)["cpu_other"], tp(s)["cpu_other"] / max(tp(s)["window"], 1e-9)))
    add("peak RSS, platform/worker processes summed", _mb, lambda s: tp(s) and tp(s)["peak_rss"])
    add("peak PSS, same processes", _mb, lambda s: tp(s) and tp(s)["peak_pss"])
    for q in ("p50", "p90", "p99"):
        add(f"trigger-to-start latency {q}", lambda v: f"{v:.2f} ms", lambda s, q=q: lat(s) and lat(s)[q], ratio=True)
    add("trigger call returns (p50)", lambda v: f"{v:.2f} ms", lambda s: call(s) and call(s)["p50"])
    add("CPU of other processes during the latency runs (noise)", lambda v: f"{v:.2f} cores",
        lambda s: s.get("latency_other_cores"))
    if len(cv.get("throughput_rounds", [])) > 1 or len(ce.get("throughput_rounds", [])) > 1:
        rounds = lambda side: side and ", ".join(f"{v:.0f}" for v in side["throughput_rounds"])  # noqa: E731
        rows.insert(1, ("runs/s of each round (the median round is shown)", rounds(cv) or "-", rounds(ce) or "-", ""))
        p50s = lambda side: side and ", ".join(f"{v:.2f}" for v in side.get("latency_p50_rounds", []))  # noqa: E731
        rows.append(("latency p50 of each round (ms; percentiles above pool all rounds)", p50s(cv) or "-",
                     p50s(ce) or "-", ""))
    lines = ["| | Conveyor | Celery | Conveyor / Celery |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {a} | {b} | {r} |" for label, a, b, r in rows]
    return "\n".join(lines)
