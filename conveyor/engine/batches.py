"""A batch's idempotency key (`batch_trigger(items, idempotency_key=...)`): a second call with
the key answers the batch that holds it, its id and its runs, and makes no run.

One batch holds a key in an environment at a time, and the database's unique index on
(env_id, idempotency_key) decides between calls racing with the key (two servers included): a
call inserts its batch row first, and reads the holder only when that insert found one. The
key stops holding its batch when it expires (`idempotency_key_ttl`, 30 days by default), when
it is reset (`idempotency_keys.reset_batch`), or, as a run's own key is released when its run
fails, when a run of the batch has ended in a failure status or been canceled: the next call
with the key then makes a new batch that keeps the runs that have not failed (same ids) and
triggers the failed ones again, as a retry of a run does with the batch it waits for.

Used inside the trigger transaction of tasks.py (a backend's batch) and durable.py (a run's);
this module never commits and never makes runs itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from conveyor.durations import parse_duration
from conveyor.engine.transitions import DEFAULT_IDEMPOTENCY_TTL
from conveyor.engine.views import json_text, run_view
from conveyor.errors import Conflict, InvalidRequest, PayloadError, TransactionConflict
from conveyor.ids import new_id
from conveyor.models import FAILURE_STATUSES, Run, RunStatus
from conveyor.serialization import json_problem
from conveyor.store import Row, Tx

MAX_KEY_LENGTH = 2048
_GIVE_UP = 8  # claims in one transaction: each lost one means another call changed the key


@dataclass(frozen=True, slots=True)
class BatchKey:
    """A batch's idempotency key, scoped as the caller gave it, and until when it holds."""

    key: str
    expires_at: float | None


@dataclass(slots=True)
class Claim:
    """What a keyed batch call found. `cached`: the batch holding the key is the answer, as it
    is (its runs are `kept`, every one). Otherwise `batch_id` is a new batch that now holds
    the key, and `kept` has, per item, the run of the batch that held the key before and did
    not fail (None: make a run for the item)."""

    batch_id: str
    cached: bool
    kept: list[Row | None] = field(default_factory=list)


def batch_key(key: object, ttl: object, now: float) -> BatchKey | None:
    """The batch key of a call (None without one): non-empty text up to 2048 characters, held
    `ttl` (seconds or a duration such as "1h"; None: 30 days, as a run's key). A `ttl` without
    a key is checked and has no effect, as a trigger's."""
    if key is None:
        if ttl is not None:
            _seconds(ttl)
        return None
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency_key: a batch's key is text of 1 to {MAX_KEY_LENGTH} characters, "
            f"got {key!r:.80}"
        )
    problem = json_problem(key, "idempotency_key")
    if problem:
        raise PayloadError(problem)
    return BatchKey(key, now + (DEFAULT_IDEMPOTENCY_TTL if ttl is None else _seconds(ttl)))


def _seconds(ttl: object) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float | str):
        raise InvalidRequest(f"idempotency_key_ttl: seconds or a duration like '1h', got {ttl!r}")
    try:
        return parse_duration(ttl, name="idempotency_key_ttl")
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def claim(
    tx: Tx,
    env_id: str,
    key: BatchKey,
    task_ids: list[str],
    *,
    now: float,
    parent_id: str | None,
) -> Claim:
    """The batch `key` answers for a call with items of `task_ids` (see the module docstring):
    the batch holding it, or a new batch recorded here that holds it from now on. A key
    holding a batch of other tasks, or of another number of runs, is a Conflict."""
    batch_id = new_id("batch")
    task_id = task_ids[0] if len(set(task_ids)) == 1 else None
    before: list[Row] | None = None  # the runs of the batch whose key a failure released
    for _ in range(_GIVE_UP):
        if tx.run(
            "claim_batch_key",
            id=batch_id,
            env_id=env_id,
            task_id=task_id,
            run_count=len(task_ids),
            parent_id=parent_id,
            now=now,
            key=key.key,
            expires_at=key.expires_at,
        ):
            return Claim(batch_id, False, _kept(before, len(task_ids)))
        holder = tx.one("find_keyed_batch", env_id=env_id, key=key.key)
        if holder is None:  # released by another call since the insert: claim it again
            continue
        expires = holder["idempotency_expires_at"]
        if expires is not None and expires <= now:  # expired: the key starts afresh
            tx.run("release_batch_key", id=holder["id"], key=key.key)
            before = None
            continue
        runs = _runs_of(tx, holder)
        _check_same(holder, runs, task_ids)
        if any(_failed(r) for r in runs):
            tx.run("release_batch_key", id=holder["id"], key=key.key)
            before = runs
            continue
        return Claim(holder["id"], True, list(runs))
    raise TransactionConflict(
        "other calls kept changing this batch idempotency key; nothing was changed, try again"
    )


def record(tx: Tx, batch_id: str, runs: list[Run]) -> None:
    """The runs of a keyed batch, in input order: what a later call with its key answers."""
    tx.run("set_batch_runs", id=batch_id, run_ids=json_text([r.id for r in runs]))


def release(tx: Tx, env_id: str, key: str) -> bool:
    """Release `key` (`idempotency_keys.reset_batch`): the next call with it makes a new batch.
    Whether a batch held it."""
    holder = tx.one("find_keyed_batch", env_id=env_id, key=key)
    return holder is not None and bool(tx.run("release_batch_key", id=holder["id"], key=key))


def cached_runs(rows: list[Row | None]) -> list[Run]:
    """The runs of a batch returned as it is, each marked cached."""
    runs = []
    for row in rows:
        assert row is not None
        run = run_view(row)
        run.is_cached = True
        runs.append(run)
    return runs


def merged(kept: list[Row | None], made: dict[int, Run]) -> list[Run]:
    """The runs of a new keyed batch in input order: those kept from the batch that held the
    key before (marked cached: this call did not make them), and those `made` by index."""
    runs = []
    for index, row in enumerate(kept):
        if row is None:
            runs.append(made[index])
        else:
            runs.extend(cached_runs([row]))
    return runs


def _runs_of(tx: Tx, batch: Row) -> list[Row]:
    ids: list[str] = json.loads(batch["run_ids"] or "[]")
    rows = {r["id"]: r for r in tx.all("get_runs_by_id", ids=ids)} if ids else {}
    return [rows[i] for i in ids if i in rows]


def _check_same(holder: Row, runs: list[Row], task_ids: list[str]) -> None:
    has = [r["task_id"] for r in runs]
    if has == task_ids:
        return
    if len(has) != len(task_ids):
        count = len(task_ids)
        what = f"{len(has)} runs, and this call has {count} item{'s' if count != 1 else ''}"
    else:
        index = next(i for i, (a, b) in enumerate(zip(has, task_ids, strict=True)) if a != b)
        what = f"items[{index}] a run of {has[index]!r}, and this call gives {task_ids[index]!r}"
    raise Conflict(
        f"this batch idempotency key belongs to batch {holder['id']}, with {what}: a key names "
        "one batch, so give these items a key of their own (or release it with "
        "idempotency_keys.reset_batch(key))"
    )


def _failed(row: Row) -> bool:
    status = RunStatus(row["status"])
    return status in FAILURE_STATUSES or status == RunStatus.CANCELED


def _kept(before: list[Row] | None, count: int) -> list[Row | None]:
    if before is None:
        return [None] * count
    return [None if _failed(r) else r for r in before]
