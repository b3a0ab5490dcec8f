"""The arithmetic of the fairness suite (bench/README.md, section 5): pure functions over the
runs' start times, the same for every system.

A start is `(time, tenant)`: the task's own `time.time()` when its body began, and its tenant
(its concurrency key on Conveyor). Starts are ordered by time (ties by tenant, then as given),
and the order is what most figures count, so they depend little on how fast a system is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

Start = tuple[float, str]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (as report.percentile; kept
    here so this module imports nothing from the harness)."""
    if not values:
        return float("nan")
    ranked = sorted(values)
    rank = (len(ranked) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ranked) - 1)
    return ranked[low] + (ranked[high] - ranked[low]) * (rank - low)


def ordered(starts: Iterable[Start]) -> list[Start]:
    """Starts by time; a tie is broken by tenant so the order does not depend on input order."""
    return sorted(starts)


def jain(values: Iterable[float]) -> float | None:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1.0 when every x is equal, 1/n when one
    x has everything. None for no values or all zero (nobody got anything: nothing to judge)."""
    xs = list(values)
    squares = sum(x * x for x in xs)
    if not xs or squares == 0:
        return None
    return sum(xs) ** 2 / (len(xs) * squares)


def max_min_shares(demands: Mapping[str, int], total: int) -> dict[str, float]:
    """Each tenant's max-min fair share of `total` starts given its demand (its runs queued):
    water-filling, every tenant gets min(demand, level) with the level set so the shares add up
    to `total` (or to all the demand, if that is less). What a round-robin over the tenants
    gives them over the first `total` starts, up to one turn."""
    shares = {tenant: 0.0 for tenant in demands}
    left = float(min(total, sum(demands.values())))
    open_ = sorted((d, t) for t, d in demands.items() if d > 0)
    while open_ and left > 1e-12:
        level = left / len(open_)
        smallest, _ = open_[0]
        if smallest <= level:  # the smallest demand is met in full; share the rest again
            demand, tenant = open_.pop(0)
            shares[tenant] = float(demand)
            left -= demand
        else:
            for _, tenant in open_:
                shares[tenant] = level
            left = 0.0
    return shares


def window_counts(starts: list[Start], size: int) -> Counter[str]:
    """Starts per tenant among the first `size` starts (`starts` already ordered)."""
    return Counter(tenant for _, tenant in starts[:size])


def window_figures(starts: list[Start], demands: Mapping[str, int], size: int) -> dict[str, Any]:
    """Fairness over the first `size` starts (`starts` ordered): Jain's index of each tenant's
    starts over its max-min fair share (every tenant with demand counts; a tenant left out
    scores 0), the lowest and highest of those ratios, and how many tenants had a start."""
    counts = window_counts(starts, size)
    shares = max_min_shares(demands, size)
    normalised = {t: counts.get(t, 0) / shares[t] for t in demands if shares[t] > 0}
    served = sum(1 for t in demands if counts.get(t, 0) > 0)
    return {
        "window_starts": min(size, len(starts)),
        "jain_max_min": jain(normalised.values()),
        "tenants_served_in_window": served,
        "min_share": min(normalised.values(), default=None),
        "max_share": max(normalised.values(), default=None),
    }


def first_starts(starts: list[Start], tenants: Iterable[str]) -> dict[str, tuple[float, int]]:
    """Per tenant: (its first start minus the workload's first start, in seconds; how many
    starts of any tenant came before it). Tenants that never started are left out."""
    if not starts:
        return {}
    t0 = starts[0][0]
    wanted = set(tenants)
    found: dict[str, tuple[float, int]] = {}
    for rank, (at, tenant) in enumerate(starts):
        if tenant in wanted and tenant not in found:
            found[tenant] = (at - t0, rank)
    return found


def first_start_figures(starts: list[Start], tenants: list[str]) -> dict[str, Any]:
    """p50/p99/max of the tenants' time to first start (ms, from the workload's first start) and
    of the starts before each tenant's first."""
    found = first_starts(starts, tenants)
    ms = [at * 1000 for at, _ in found.values()]
    ranks = [float(rank) for _, rank in found.values()]
    return {
        "tenants_started": len(found),
        "ttfs_p50_ms": percentile(ms, 50),
        "ttfs_p99_ms": percentile(ms, 99),
        "ttfs_max_ms": max(ms, default=float("nan")),
        "ahead_p50": percentile(ranks, 50),
        "ahead_p99": percentile(ranks, 99),
        "ahead_max": max(ranks, default=float("nan")),
    }


def behind_backlog(
    big: list[float], small_start: float, triggered: float, queued: float, total: int
) -> dict[str, Any]:
    """The small tenant's one run behind the big tenant's backlog: `big` is the big runs' start
    times, `small_start` the small run's, `triggered` the client's clock before the trigger call,
    `queued` when the call returned (the run is durable and visible to the scheduler by then).
    Counts the big runs started before the trigger, after it was queued and before the small
    run started (`ahead`: what it waited for), and between the call and the queueing (`racing`:
    starts the scheduler could not have given it)."""
    return {
        "wait_ms": (small_start - triggered) * 1000,
        "wait_after_queued_ms": (small_start - queued) * 1000,
        "big_started_before_trigger": sum(1 for at in big if at < triggered),
        "big_queued_at_trigger": total - sum(1 for at in big if at < triggered),
        "big_racing_trigger": sum(1 for at in big if triggered <= at < queued),
        "big_ahead": sum(1 for at in big if queued <= at < small_start),
    }


def demands_for(tenants: int, pattern: list[int]) -> dict[str, int]:
    """Tenant `t000`, `t001`, ... with the demands of `pattern` in turn (t000 gets pattern[0])."""
    return {f"t{i:03d}": pattern[i % len(pattern)] for i in range(tenants)}
