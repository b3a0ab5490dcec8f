"""The durable workloads, as every system runs them (bench/README.md, "Durable workloads"), and
the arithmetic they share.

1. fan-out: a parent starts FANOUT children that do nothing and waits for all of them;
   timed from triggering the parent to the parent completed.
2. limited: a parent starts LIMITED children of WORK_SECONDS each in a queue of concurrency
   LIMIT and waits for all; ideal LIMITED * WORK_SECONDS / LIMIT = 2.0 s. The peak concurrency
   is measured from the children's start and end times.
3. sleep: SLEEPERS runs each sleep SLEEP_SECONDS durably; timed from the first trigger to the
   last completion, with the peak memory of the platform meanwhile.
"""

from __future__ import annotations

from typing import Any

FANOUT = 1000
LIMITED = 100
LIMIT = 5
WORK_SECONDS = 0.1
IDEAL_LIMITED = LIMITED * WORK_SECONDS / LIMIT
SLEEPERS = 1000
SLEEP_SECONDS = 10.0


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at once. An end at the same instant as a start is
    counted first: a slot handed over is not two runs at once."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda e: (e[0], e[1]),
    )
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def busy_fraction(intervals: list[tuple[float, float]], limit: int) -> float | None:
    """How full the `limit` slots were between the first start and the last end: the children's
    summed durations over limit * that span (1.0 = no slot ever idle)."""
    if not intervals:
        return None
    span = max(e for _, e in intervals) - min(s for s, _ in intervals)
    return sum(e - s for s, e in intervals) / (limit * span) if span > 0 else None


def handoff_gaps(intervals: list[tuple[float, float]], limit: int) -> list[float]:
    """For each child after the first `limit`: its start minus the end that freed its slot (the
    k-th end, ordered, for the (limit + k)-th start). What a slot costs to hand over."""
    starts = sorted(s for s, _ in intervals)
    ends = sorted(e for _, e in intervals)
    return [starts[limit + k] - ends[k] for k in range(len(starts) - limit)]


def interval_figures(
    prefix: str, intervals: list[tuple[float, float]], t0: float, limit: int
) -> dict[str, Any]:
    """Peak concurrency, busy fraction, first start and last end (after t0), median handoff."""
    if not intervals:
        return {f"{prefix}_peak": None}
    gaps = sorted(handoff_gaps(intervals, limit))
    return {
        f"{prefix}_peak": peak_concurrency(intervals),
        f"{prefix}_busy": busy_fraction(intervals, limit),
        f"{prefix}_first_start": min(s for s, _ in intervals) - t0,
        f"{prefix}_last_end": max(e for _, e in intervals) - t0,
        f"{prefix}_handoff_p50": gaps[len(gaps) // 2] if gaps else None,
        f"{prefix}_count": len(intervals),
    }


def problem(workload: str, figures: dict[str, Any], n: int) -> str | None:
    """What went wrong in a measured workload (None if nothing): a figure is only a figure if
    every run completed, the parent counted all of its children, and the limit held."""
    issues = []
    status = figures.get("status")
    if status is not None and status not in ("COMPLETED", "SUCCESS"):
        detail = f" ({figures['error']})" if figures.get("error") else ""
        issues.append(f"parent {status}{detail}")
    elif workload != "sleep" and figures.get("output") != n:
        issues.append(f"parent counted {figures.get('output')} of {n}")
    ok = figures.get("children_ok")
    if ok != n:
        issues.append(f"{ok} of {n} {'runs' if workload == 'sleep' else 'children'} completed")
    if workload.startswith("limited"):
        peaks = [
            figures.get(k) for k in ("recorded_peak", "own_peak") if figures.get(k) is not None
        ]
        if peaks and max(peaks) > LIMIT:
            issues.append(f"{max(peaks)} ran at once (limit {LIMIT})")
    return "; ".join(issues) or None
