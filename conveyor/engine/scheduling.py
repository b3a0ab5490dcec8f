"""Which queued runs start next: a pure function over queue limits and what is running.

The engine calls `choose_runs` inside the transaction that moves the chosen runs to EXECUTING,
so no two workers can overshoot a limit. Limits, from narrowest to widest:

- a queue's `concurrency_limit` applies to each concurrency key separately (runs without a key
  share one copy), the way a tenant key gives every tenant its own copy of the queue;
- the environment's limit caps every EXECUTING run of the environment together;
- the worker's free capacity caps what one lease hands out.

Among startable runs the lowest score wins (score = available time minus priority seconds), so
runs start in trigger order across queues, and `priority` buys a head start.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    queue: str
    concurrency_key: str | None
    score: float


def choose_runs(
    *,
    capacity: int,
    env_free: int | None,
    queue_limits: dict[str, int | None],
    executing: dict[tuple[str, str | None], int],
    candidates: Iterable[list[Candidate]],
) -> list[Candidate]:
    """The runs to start now, best first, respecting every limit."""
    budget = capacity if env_free is None else min(capacity, env_free)
    if budget <= 0:
        return []
    running = dict(executing)
    chosen: list[Candidate] = []
    for cand in heapq.merge(*candidates, key=lambda c: c.score):
        limit = queue_limits.get(cand.queue)
        bucket = (cand.queue, cand.concurrency_key)
        if limit is not None and running.get(bucket, 0) >= limit:
            continue
        running[bucket] = running.get(bucket, 0) + 1
        chosen.append(cand)
        if len(chosen) >= budget:
            break
    return chosen


def fetch_size(capacity: int, limit: int | None) -> int:
    """How many candidates to read from one queue: enough to fill it, not its whole backlog.

    A limited queue reads a margin beyond its limit, so runs of other concurrency keys behind
    a full key are still seen.
    """
    return capacity if limit is None else min(capacity, limit) + 50
