"""Trigger options that look at other runs and queues: `debounce` (one DELAYED run gathers a
key's triggers) and a queue named at trigger time. Used by transitions.py's `create_runs`, in
its transaction.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.durations import parse_duration
from conveyor.engine.views import run_view
from conveyor.errors import Conflict, InvalidRequest
from conveyor.models import DebounceSpec, QueueSpec, Run, RunStatus
from conveyor.store import Tx

# what the last trigger of a debounced run gives it in trailing mode
_DEBOUNCED_SETTINGS = ("payload", "metadata", "tags", "max_attempts", "max_duration", "machine")


def debounce(
    tx: Tx,
    row: dict[str, Any],
    spec: DebounceSpec,
    now: float,
    where: str,
    gathered: dict[tuple[str, str], dict[str, Any]],
) -> Run | None:
    """A trigger with a debounce key. The run still waiting to start under the key (made earlier
    in this batch, or stored) starts `delay` from now instead (never past its first trigger's
    `max_delay`) and, in trailing mode, with this trigger's payload: returned. Else `row` becomes
    that run (DELAYED by `delay`), and None is returned. Trailing mode also takes this
    trigger's metadata, tags, max_attempts, max_duration and machine."""
    try:
        delay = parse_duration(spec.delay, name="debounce.delay")
        most = (
            parse_duration(spec.max_delay, name="debounce.max_delay")
            if spec.max_delay is not None
            else None
        )
    except ValueError as exc:
        raise InvalidRequest(f"{where}{exc}") from exc
    key = (row["task_id"], spec.key)
    held = gathered.get(key) or tx.one(
        "find_debounced_run", env_id=row["env_id"], task_id=row["task_id"], key=spec.key
    )
    if held is None:
        start = now + delay if most is None else now + min(delay, most)
        row.update(
            status=RunStatus.DELAYED if delay > 0 else RunStatus.QUEUED,
            available_at=start,
            score=start - row["priority"],
            expires_at=row["expires_at"] if delay <= 0 else None,
            debounce_key=spec.key,
            debounce_deadline=now + most if most is not None else None,
        )
        gathered[key] = row
        return None
    start = now + delay
    if held["debounce_deadline"] is not None:
        start = min(start, held["debounce_deadline"])
    source = row if spec.mode == "trailing" else held
    latest = {name: source[name] for name in _DEBOUNCED_SETTINGS}
    if held["idempotency_key"] is None and row["idempotency_key"] is not None:
        latest |= {k: row[k] for k in ("idempotency_key", "idempotency_expires_at")}
    if key in gathered:  # not inserted yet: the row itself changes
        held.update(available_at=start, score=start - held["priority"], **latest)
    else:
        keyed = {"idempotency_key": None, "idempotency_expires_at": None} | latest
        tx.run("push_debounced_run", id=held["id"], available_at=start, now=now, **keyed)
    run = run_view({**held, "available_at": start, "updated_at": now, **latest})
    run.is_cached = True
    return run


def queue_columns(spec: QueueSpec) -> dict[str, Any]:
    """A queue's limits and weights as the queues table stores them."""
    rate = spec.rate_limit
    return {
        "name": spec.name,
        "concurrency_limit": spec.concurrency_limit,
        "rate_limit": rate.limit if rate else None,
        "rate_period": rate.seconds if rate else None,
        "weights": json.dumps(spec.weights, sort_keys=True) if spec.weights else None,
    }


def merged_queue(first: QueueSpec | None, other: QueueSpec) -> QueueSpec:
    """A queue several tasks name: each setting any of them declares."""
    if first is None:
        return other
    return QueueSpec(
        name=other.name,
        concurrency_limit=(
            first.concurrency_limit if other.concurrency_limit is None else other.concurrency_limit
        ),
        rate_limit=other.rate_limit or first.rate_limit,
        weights=other.weights or first.weights,
    )


def trigger_queue(tx: Tx, env_id: str, queue: QueueSpec, where: str, now: float) -> None:
    """A queue named at trigger time: made with the limits given when it is new, else used as
    it is. A limit or weights that differ from those in force are refused: a trigger never
    changes what every run of the queue shares (`queues.set_concurrency`, or the code of a
    task whose queue it is, does)."""
    tx.run("ensure_queue", env_id=env_id, now=now, **queue_columns(queue))
    if queue.concurrency_limit is None and queue.rate_limit is None and not queue.weights:
        return
    row = tx.one("queue_limit", env_id=env_id, name=queue.name)
    assert row is not None
    limit = queue.concurrency_limit
    if limit is not None and row["concurrency_limit"] != limit:
        has = row["concurrency_limit"]
        current = "no concurrency limit" if has is None else f"concurrency_limit {has}"
        raise Conflict(
            f"{where}queue {queue.name!r} has {current}, and a trigger cannot change the limit "
            f"all its runs share (asked: {limit}); trigger without concurrency_limit to use the "
            f"queue as it is, name a queue of its own, or set its limit to {limit} first with "
            f"queues.set_concurrency({queue.name!r}, {limit})"
        )
    rate = queue.rate_limit
    if rate is not None and (row["rate_limit"], row["rate_period"]) != (rate.limit, rate.seconds):
        current = (
            "no rate limit"
            if row["rate_limit"] is None
            else f"rate_limit {row['rate_limit']} per {row['rate_period']:g} s"
        )
        raise Conflict(
            f"{where}queue {queue.name!r} has {current}, and a trigger cannot change the rate "
            f"limit all its runs share (asked: {rate.limit} per {rate.seconds:g} s); trigger "
            "without rate_limit to use the queue as it is, or name a queue of its own"
        )
    weights = queue.weights
    if weights and (json.loads(row["weights"]) if row["weights"] else None) != weights:
        current = f"weights {row['weights']}" if row["weights"] else "no weights"
        raise Conflict(
            f"{where}queue {queue.name!r} has {current}, and a trigger cannot change the weights "
            f"all its runs share (asked: {json.dumps(weights, sort_keys=True)}); trigger without "
            "weights to use the queue as it is, or name a queue of its own"
        )
