"""What each queue offers a lease: its startable runs in the order the queue serves them, the
starts its rate limit still allows, and, once the lease has chosen, the bookkeeping of both.

Runs the SQL of one lease transaction (conveyor/engine/workers.py): the queue's row is locked
for it on PostgreSQL, so the window a rate limit counts and the turns of its keys are read and
written by one lease at a time, and limits hold across workers and servers. The choosing itself
is pure (conveyor/engine/scheduling.py).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass

from conveyor.engine.scheduling import (
    Bucket,
    Candidate,
    KeyHead,
    advance_turns,
    fetch_size,
    round_robin,
)
from conveyor.store import Row, Tx


@dataclass(frozen=True, slots=True)
class QueueState:
    """A queue as a lease sees it."""

    name: str
    limit: int | None
    keyed: bool  # some of its runs have had a concurrency key: keys take turns
    rate_limit: int | None
    rate_period: float | None
    weights: dict[str, int] | None
    clock: float  # the round-robin clock: the turn of its latest start

    @classmethod
    def of(cls, row: Row) -> QueueState:
        return cls(
            name=row["name"],
            limit=row["concurrency_limit"],
            keyed=bool(row["keyed"]),
            rate_limit=row["rate_limit"],
            rate_period=row["rate_period"],
            weights=json.loads(row["weights"]) if row["weights"] else None,
            clock=row["vclock"],
        )


def _bucket(key: str | None) -> str:
    return "" if key is None else key


class Admission:
    """The queues' side of one lease (see the module docstring)."""

    def __init__(
        self, tx: Tx, env_id: str, now: float, executing: dict[Bucket, int], capacity: int
    ) -> None:
        self._tx = tx
        self._env_id = env_id
        self._now = now
        self._executing = executing
        self._capacity = capacity
        self.rate_room: dict[Bucket, int] = {}  # starts a rate limit still allows now
        self.resuming: set[str] = set()  # candidates resuming after a wait
        self.rate_free_at = math.inf  # when a bucket a rate limit holds back has room again

    def candidates(self, queue: QueueState) -> list[Candidate]:
        """The queue's runs that may start now, in the order it serves them, at most what
        fills the lease (its limits are checked again, across queues, by choose_runs)."""
        size = fetch_size(self._capacity, queue.limit)
        if size <= 0:
            return []
        window = self._rate_window(queue)
        if not queue.keyed:
            room = self._rate_room(queue, None, window)
            if room is not None:
                size = min(size, room)
            if size <= 0:
                return []
            rows = self._tx.all("queued_candidates", **self._startable(queue), limit=size)
            return self._made(queue, rows)
        return self._in_turn(queue, window)

    def _in_turn(self, queue: QueueState, window: dict[str, Row] | None) -> list[Candidate]:
        """A queue whose keys take turns: read each key's share, in the round-robin's order."""
        heads = []
        room: dict[str | None, int] = {}
        for row in self._tx.all("queued_key_heads", **self._startable(queue)):
            key = row["concurrency_key"]
            free = [self._capacity]
            if queue.limit is not None:
                free.append(queue.limit - self._executing.get((queue.name, key), 0))
            rate = self._rate_room(queue, key, window)
            if rate is not None:
                free.append(rate)
            room[key] = min(free)
            heads.append(KeyHead(key, row["score"], row["n"], row["turn"]))
        turns = round_robin(
            heads, clock=queue.clock, weights=queue.weights, room=room, slots=self._capacity
        )
        wanted: dict[str | None, int] = defaultdict(int)
        for key, _ in turns:
            wanted[key] += 1
        rows_of: dict[str | None, list[Row]] = {}
        startable = self._startable(queue)
        for key, n in wanted.items():
            if key is None:
                rows = self._tx.all("queued_candidates_without_key", **startable, limit=n)
            else:
                rows = self._tx.all("queued_candidates_of_key", **startable, key=key, limit=n)
            rows.reverse()  # popped from the end, best first
            rows_of[key] = rows
        ordered: list[tuple[Row, float]] = []
        for key, turn in turns:
            if rows_of[key]:  # (fewer than counted: another lease took some meanwhile)
                ordered.append((rows_of[key].pop(), turn))
        return self._made(queue, [r for r, _ in ordered], [t for _, t in ordered])

    def _startable(self, queue: QueueState) -> dict[str, object]:
        """What the queries of a queue's runs that may start now take: its environment, its
        name, and the lease's time."""
        return {"env_id": self._env_id, "queue": queue.name, "now": self._now}

    def _made(
        self, queue: QueueState, rows: list[Row], turns: list[float] | None = None
    ) -> list[Candidate]:
        self.resuming.update(r["id"] for r in rows if r["resuming"])
        return [
            Candidate(
                r["id"],
                queue.name,
                r["concurrency_key"],
                r["score"],
                turns[i] if turns is not None else None,
            )
            for i, r in enumerate(rows)
        ]

    def _rate_window(self, queue: QueueState) -> dict[str, Row] | None:
        """The starts in the window of the queue's rate limit, per bucket (None: no limit)."""
        if queue.rate_limit is None or queue.rate_period is None:
            return None
        rows = self._tx.all(
            "rate_window",
            env_id=self._env_id,
            queue=queue.name,
            since=self._now - queue.rate_period,
        )
        return {r["bucket"]: r for r in rows}

    def _rate_room(
        self, queue: QueueState, key: str | None, window: dict[str, Row] | None
    ) -> int | None:
        """The starts the queue's rate limit allows the key now (None: no rate limit); a key
        with none left notes when its window has room again."""
        if window is None or queue.rate_limit is None or queue.rate_period is None:
            return None
        row = window.get(_bucket(key))
        room = queue.rate_limit - (row["n"] if row else 0)
        if room <= 0 and row is not None:
            self.rate_free_at = min(self.rate_free_at, row["first"] + queue.rate_period)
        self.rate_room[(queue.name, key)] = max(room, 0)
        return max(room, 0)

    def record(self, chosen: list[Candidate], queues: dict[str, QueueState]) -> None:
        """After the lease chose: count its new starts in their windows, move its keys' turns."""
        by_queue: dict[str, list[Candidate]] = defaultdict(list)
        for cand in chosen:
            by_queue[cand.queue].append(cand)
        for name, started in by_queue.items():
            queue = queues[name]
            if queue.rate_period is not None and queue.rate_limit is not None:
                self._tx.run_many(
                    "insert_start",
                    [
                        {
                            "env_id": self._env_id,
                            "queue": name,
                            "bucket": _bucket(c.concurrency_key),
                            "now": self._now,
                        }
                        for c in started
                    ],
                )
                self._tx.run(
                    "forget_starts",
                    env_id=self._env_id,
                    queue=name,
                    since=self._now - queue.rate_period,
                )
            if queue.keyed:
                moved = advance_turns(started, queue.weights)
                if moved is None:
                    continue
                clock, turns = moved
                self._tx.run_many(
                    "set_key_turn",
                    [
                        {"env_id": self._env_id, "queue": name, "bucket": _bucket(k), "turn": t}
                        for k, t in turns.items()
                    ],
                )
                self._tx.run("set_queue_clock", env_id=self._env_id, queue=name, vclock=clock)
                self._tx.run("forget_key_turns", env_id=self._env_id, queue=name, vclock=clock)
