"""Which queued runs start next: a pure function over queue limits and what is running.

The engine calls `choose_runs` inside the transaction that moves the chosen runs to EXECUTING,
so no two workers can overshoot a limit. Limits, from narrowest to widest:

- a queue's `concurrency_limit` applies to each concurrency key separately (runs without a key
  share one copy), the way a tenant key gives every tenant its own copy of the queue;
- the environment's limit caps every EXECUTING run of the environment together;
- a queue's `rate_limit` caps its starts in a sliding window, per concurrency key too (the engine
  counts the window and passes what is left as `rate_room`);
- the environment's limit caps every EXECUTING run of the environment together;
- the worker's free capacity caps what one lease hands out.

Among startable runs the lowest score wins (score = available time minus priority seconds), so
runs start in trigger order across queues, and `priority` buys a head start. Within a queue whose
runs have concurrency keys, keys take turns instead (`round_robin`): start-time fair queueing,
where each key's next run gets the turn `max(key's turn, queue's clock)` and every start moves
the key's turn on by 1/weight. A tenant's backlog of ten thousand runs then delays another
tenant's one run by at most one turn, not by ten thousand.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

Bucket = tuple[str, str | None]  # (queue, concurrency key): what a limit counts


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    queue: str
    concurrency_key: str | None
    score: float
    turn: float | None = None  # its round-robin turn, in a queue whose keys take turns


@dataclass(frozen=True, slots=True)
class KeyHead:
    """A concurrency key of a queue with runs that may start now."""

    key: str | None
    score: float  # of its best startable run
    queued: int  # how many may start now
    turn: float | None  # its place in the queue's round-robin (None: at the queue's clock)


def choose_runs(
    *,
    capacity: int,
    env_free: int | None,
    queue_limits: dict[str, int | None],
    executing: dict[Bucket, int],
    candidates: Iterable[list[Candidate]],
    rate_room: dict[Bucket, int] | None = None,
) -> list[Candidate]:
    """The runs to start now, best first, respecting every limit. Each queue's candidates come
    in the order that queue serves them (by score, or by turn where keys take turns); across
    queues the lower score goes first."""
    budget = capacity if env_free is None else min(capacity, env_free)
    if budget <= 0:
        return []
    running = dict(executing)
    rates = dict(rate_room or {})
    chosen: list[Candidate] = []
    # (heapq.merge keeps each queue's own order and takes the lower score of the queues' heads)
    for cand in heapq.merge(*candidates, key=lambda c: c.score):
        limit = queue_limits.get(cand.queue)
        bucket = (cand.queue, cand.concurrency_key)
        if limit is not None and running.get(bucket, 0) >= limit:
            continue
        if bucket in rates:
            if rates[bucket] <= 0:
                continue
            rates[bucket] -= 1
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


def round_robin(
    heads: Iterable[KeyHead],
    *,
    clock: float,
    weights: dict[str, int] | None,
    room: dict[str | None, int],
    slots: int,
) -> list[tuple[str | None, float]]:
    """The next `slots` turns of a queue's keys, in the order they are served: (key, turn) for
    each run to read. A key has at most `room[key]` turns (what its limits leave; absent: no
    bound) and no more than its startable runs."""
    heap: list[tuple[float, float, int, KeyHead]] = []
    left: dict[int, int] = {}
    for i, head in enumerate(heads):
        most = min(head.queued, room.get(head.key, head.queued))
        if most > 0:
            left[i] = most
            start = clock if head.turn is None else max(head.turn, clock)
            heap.append((start, head.score, i, head))
    heapq.heapify(heap)
    order: list[tuple[str | None, float]] = []
    while heap and len(order) < slots:
        turn, score, i, head = heapq.heappop(heap)
        order.append((head.key, turn))
        left[i] -= 1
        if left[i] > 0:
            heapq.heappush(heap, (turn + 1 / weight_of(weights, head.key), score, i, head))
    return order


def weight_of(weights: dict[str, int] | None, key: str | None) -> int:
    return (weights or {}).get(key, 1) if key is not None else 1


def advance_turns(
    chosen: Iterable[Candidate], weights: dict[str, int] | None
) -> tuple[float, dict[str | None, float]] | None:
    """After a lease: the queue's new clock (the turn of its latest start) and each started
    key's next turn. None when no run of the queue started."""
    clock: float | None = None
    turns: dict[str | None, float] = {}
    for cand in chosen:
        assert cand.turn is not None
        clock = cand.turn if clock is None else max(clock, cand.turn)
        after = cand.turn + 1 / weight_of(weights, cand.concurrency_key)
        turns[cand.concurrency_key] = max(turns.get(cand.concurrency_key, after), after)
    return None if clock is None else (clock, turns)
