"""Durable execution in the engine: the journal, waitpoints, suspending and resuming runs.

A durable call of a run (a step, a trigger, a wait, a token) is journaled under its key
(`kind:name#occurrence`) in the same transaction as its effect, so a call made once is never
made again: a replay of the run finds the answer in the journal. A call that has to wait
(a duration, a child run, a batch, a token) journals the waitpoint whose result will be its
answer. A run suspended on waitpoints is WAITING: no slot, no process. Completing the last
pending waitpoint it waits on queues it again, and its next lease continues the same attempt.

The worker relays a run's durable calls (`call`) and suspends it (`suspend`); the routes of
conveyor/server/api/workers.py for calls and suspend, and the worker's link, are this part.
Tokens themselves are waitpoints.py's; completing waitpoints is transitions.py's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, assert_never

from conveyor.engine import batches
from conveyor.engine.events import Events
from conveyor.engine.metadata import Answer, Flush, apply_flushes
from conveyor.engine.transitions import Holder, Transitions, again_after_deadlock
from conveyor.engine.views import json_text, run_view
from conveyor.engine.waitpoints import Waitpoints
from conveyor.errors import (
    Conflict,
    ConveyorError,
    InvalidRequest,
    NotFound,
    PayloadError,
)
from conveyor.ids import new_id
from conveyor.models import FINAL_STATUSES, RunStatus, TriggerOptions
from conveyor.protocol import (
    CompleteTokenCall,
    CreateTokenCall,
    DurableCall,
    JournalCall,
    MetadataCall,
    MetadataOp,
    StreamCall,
    TriggerCall,
    WaitTokenCall,
    WaitUntilCall,
)
from conveyor.serialization import json_problem
from conveyor.store import Row, Store, Tx

STREAM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_CHUNK_BYTES = 64 * 1024  # of JSON, per chunk
MAX_STREAM_BYTES = 16 * 1024 * 1024  # per stream
MAX_STREAM_CHUNKS = 100_000


class Durable:
    """The durable calls of runs (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        waitpoints: Waitpoints,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._waitpoints = waitpoints

    def call(
        self, env_id: str, run_id: str, call: DurableCall, *, worker_id: str, fence: int
    ) -> Any:
        """A durable call made by a run of `env_id`, as a worker relays it (see worker/replay.py).
        Made only for the attempt holding the run now (`worker_id`, `fence`), checked in the
        transaction of the call's effect: StaleAttempt otherwise (canceled, ended, taken back).
        `call` has been checked (protocol.check_call, or the HTTP route): its fields are typed."""
        holder = Holder(worker_id, fence)
        if isinstance(call, MetadataCall):  # checks the run's environment under its lock
            answer = self.metadata(env_id, worker_id, [(run_id, fence, call.ops)])[0]
            if isinstance(answer, ConveyorError):
                raise answer
            return answer
        with self._store.read() as tx:
            run = tx.one("get_run", env_id=env_id, id=run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        match call:
            case JournalCall():
                return self.journal_put(
                    run_id,
                    call.key,
                    call.value,
                    started_at=_moment(call.started_at),
                    holder=holder,
                )
            case TriggerCall():
                return self.trigger(
                    run_id,
                    call.key,
                    [tuple(item) for item in call.items],
                    wait=call.wait,
                    batch=call.batch,
                    holder=holder,
                    again=call.again,
                    idempotency_key=call.idempotency_key,
                    idempotency_key_ttl=call.idempotency_key_ttl,
                )
            case WaitUntilCall():
                return self.wait_until(
                    run_id, call.key, call.until, seconds=call.seconds, holder=holder
                )
            case CreateTokenCall():
                return self._waitpoints.create_token(
                    env_id,
                    timeout=call.timeout,
                    idempotency_key=call.idempotency_key,
                    idempotency_key_ttl=call.idempotency_key_ttl,
                    tags=call.tags,
                    run_id=run_id,
                    key=call.key,
                    holder=holder,
                )
            case WaitTokenCall():
                return self.wait_token(run_id, call.key, call.token_id, holder=holder)
            case CompleteTokenCall():
                self._waitpoints.complete_token(
                    env_id, call.token_id, call.data, holder=(run_id, holder)
                )
                return self.journal_put(run_id, call.key, {}, holder=holder)
            case MetadataCall():  # pragma: no cover - made above
                raise AssertionError(call)
            case StreamCall():
                return self.stream(
                    run_id, call.name, call.start, call.chunks, done=call.done, holder=holder
                )
        assert_never(call)

    # -- metadata and streams -----------------------------------------------------------------

    def metadata(
        self, env_id: str, worker_id: str, flushes: list[tuple[str, int, list[MetadataOp]]]
    ) -> list[Answer]:
        """Apply metadata flushes (run id, fence of its attempt, ops) of runs of `env_id` that
        `worker_id` executes, in one transaction: an answer for each, a dict or the error
        (see engine/metadata.py). A worker sends those of all its runs together."""
        batch = [Flush(r, ops, Holder(worker_id, fence)) for r, fence, ops in flushes]

        def apply() -> tuple[list[Answer], list[str]]:
            with self._store.transaction() as tx:
                return apply_flushes(tx, env_id, batch, self._clock())

        answers, changed = again_after_deadlock(apply)
        if changed:
            self._events.changed(env_id, changed)
        return answers

    def stream(
        self,
        run_id: str,
        name: str,
        start: int,
        chunks: list[Any],
        *,
        done: bool = False,
        holder: Holder | None = None,
    ) -> dict[str, Any]:
        """Store chunks of a run's stream in order (numbered from `start`); chunks stored before
        (sent again after a lost answer) are skipped. With `done` the stream ends."""
        if not STREAM_NAME.fullmatch(name):
            raise InvalidRequest(
                f"stream name {name!r}: 1 to 64 letters, digits, '-', '_', '.' or ':'"
            )
        texts = []
        for index, chunk in enumerate(chunks):
            problem = json_problem(chunk, f"chunk {start + index} of stream {name!r}")
            if problem:
                raise PayloadError(problem)
            try:
                text = json_text(chunk)
            except (TypeError, ValueError) as exc:  # NaN, infinity, or no JSON type at all
                raise PayloadError(f"chunk {start + index} of stream {name!r}: {exc}") from None
            if len(text) > MAX_CHUNK_BYTES:
                raise PayloadError(
                    f"chunk {start + index} of stream {name!r} is {len(text) // 1024} KB of "
                    f"JSON; a chunk is at most {MAX_CHUNK_BYTES // 1024} KB"
                )
            texts.append(text)
        now = self._clock()
        with self._store.transaction() as tx:
            run = self._transitions.check_holder(tx, run_id, holder) or tx.one(
                "get_run_by_id", id=run_id
            )
            if run is None:
                raise NotFound(f"run {run_id} not found")
            state = tx.one("stream_state", run_id=run_id, name=name)
            stored = int(state["chunks"]) if state else 0
            if state is not None and state["ended"]:
                if start + len(texts) > stored:
                    raise Conflict(
                        f"stream {name!r} of this run has ended: a stream is written once per "
                        "run; give another stream another name"
                    )
                return {"stored": stored, "done": True}  # sent again after a lost answer
            if start > stored:
                raise InvalidRequest(
                    f"stream {name!r}: chunk {start} sent before chunk {stored} was stored"
                )
            new = texts[stored - start :]
            size = (int(state["bytes"]) if state else 0) + sum(len(t) for t in new)
            if stored + len(new) > MAX_STREAM_CHUNKS or size > MAX_STREAM_BYTES:
                raise PayloadError(
                    f"stream {name!r} would hold {stored + len(new)} chunks and "
                    f"{size // 1024} KB; a stream holds at most {MAX_STREAM_CHUNKS} chunks and "
                    f"{MAX_STREAM_BYTES // 1024**2} MB"
                )
            if new:
                tx.run_many(
                    "insert_stream_chunk",
                    [
                        {"run_id": run_id, "name": name, "seq": stored + i, "chunk": t, "now": now}
                        for i, t in enumerate(new)
                    ],
                )
            stored += len(new)
            if done:
                tx.run("end_stream", run_id=run_id, name=name, seq=stored, now=now)
        self._events.emit("stream", run["env_id"], run_id)
        return {"stored": stored, "done": done}

    # -- the journal ------------------------------------------------------------------------

    def journal_put(
        self,
        run_id: str,
        key: str,
        value: Any,
        *,
        started_at: float | None = None,
        holder: Holder | None = None,
    ) -> Any:
        """Record the answer to a call that needs no waiting (a step, now, uuid). If the key is
        already journaled, the recorded answer wins and is returned. `started_at` is when a step
        began (its span in the trace); a moment after now (a worker's clock ahead) counts as now."""
        problem = json_problem(value, f"the value of {key!r}")
        if problem:
            raise PayloadError(problem)
        now = self._clock()
        with self._store.transaction() as tx:
            self._transitions.check_holder(tx, run_id, holder)
            if started_at is None:
                tx.run(
                    "insert_journal",
                    run_id=run_id,
                    key=key,
                    value=json_text(value),
                    waitpoint_id=None,
                    now=now,
                )
            else:
                tx.run(
                    "insert_step_journal",
                    run_id=run_id,
                    key=key,
                    value=json_text(value),
                    started_at=min(started_at, now),
                    now=now,
                )
            row = tx.one("get_journal_entry", run_id=run_id, key=key)
        assert row is not None
        return json.loads(row["value"])

    def trigger(
        self,
        run_id: str,
        key: str,
        items: list[tuple[str, Any, dict[str, Any]]],
        *,
        wait: bool,
        batch: bool,
        holder: Holder | None = None,
        again: bool = False,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]:
        """Trigger children of a run as one journaled call; with `wait`, also the waitpoint the
        run will wait on (one run, or the whole batch in input order). `again`: the run is on a
        later attempt than the one that journaled the call, and the children that failed then
        are triggered again (the others are kept); otherwise the journaled answer stands.
        A batch's `idempotency_key` answers the batch holding it (batches.py); the journal is
        read first, so a replay never asks the key."""
        now = self._clock()
        batch_key = batches.batch_key(idempotency_key, idempotency_key_ttl, now)
        if batch_key is not None and not batch:
            raise InvalidRequest("an idempotency key of a batch needs a batch")
        options = []
        for index, (_, _, raw) in enumerate(items):
            try:
                options.append(TriggerOptions.model_validate(raw))
            except ValueError as exc:
                raise InvalidRequest(f"items[{index}]: invalid trigger options: {exc}") from exc
        envs: set[str] = set()
        with self._store.transaction() as tx:
            parent = tx.one("get_run_by_id", id=run_id)
            if parent is None:
                raise NotFound(f"run {run_id} not found")
            env_id = parent["env_id"]
            tx.lock(env_id)
            self._transitions.check_holder(tx, run_id, holder)
            existing = tx.one("get_journal_entry", run_id=run_id, key=key)
            kept: list[Row | None] = [None] * len(items)  # children kept from an earlier attempt
            if existing is not None:
                earlier = self._failed_before(tx, existing, parent) if again and wait else None
                if earlier is None:
                    return self._answer(tx, existing)
                same = len(earlier) == len(items) and all(
                    r["task_id"] == item[0] for r, item in zip(earlier, items, strict=True)
                )
                if same:  # the same call: only its failed children again
                    kept = [r if r["status"] == RunStatus.COMPLETED else None for r in earlier]
            batch_id = new_id("batch") if batch else None
            claim = None
            if batch_key is not None:
                claim = batches.claim(
                    tx, env_id, batch_key, [item[0] for item in items], now=now, parent_id=run_id
                )
                batch_id = claim.batch_id
                kept = [k if k is not None else c for k, c in zip(kept, claim.kept, strict=True)]
            # children a run waits for run on the run's version; others on the current one
            fresh = [i for i, k in enumerate(kept) if k is None]
            made, queued = (
                self._transitions.create_runs(
                    tx,
                    env_id,
                    [(items[i][0], items[i][1], options[i]) for i in fresh],
                    now=now,
                    parent=parent,
                    batch_id=batch_id,
                    deployed=parent["version"] is not None,
                    version=parent["version"] if wait else None,
                    batch_recorded=claim is not None,
                )
                if fresh
                else ([], False)
            )
            if queued:
                envs.add(env_id)
            by_index = dict(zip(fresh, made, strict=True))
            if len(fresh) < len(kept):  # the children that completed stay in the answer
                rows = tx.all("get_runs_by_id", ids=[k["id"] for k in kept if k is not None])
                by_index |= {
                    i: run_view(row)
                    for row in rows
                    for i, k in enumerate(kept)
                    if k is not None and k["id"] == row["id"]
                }
            runs = [by_index[i] for i in range(len(kept))]
            if claim is not None:
                for i, kept_run in enumerate(claim.kept):
                    if kept_run is not None:  # the key's batch made it, not this call
                        runs[i].is_cached = True
                if not claim.cached:
                    batches.record(tx, batch_id or "", runs)
            waitpoint_id = None
            if wait:
                waitpoint_id = new_id("wait", now)
                done = sum(1 for r in runs if r.status in FINAL_STATUSES)
                tx.run(
                    "insert_waitpoint",
                    id=waitpoint_id,
                    env_id=env_id,
                    kind="batch" if batch else "run",
                    status="PENDING",
                    owner_run_id=run_id,
                    complete_at=None,
                    batch_id=batch_id,
                    run_count=len(runs),
                    done_count=done,
                    idempotency_key=None,
                    tags="[]",
                    result=None,
                    now=now,
                    completed_at=None,
                )
                tx.run_many(
                    "insert_waitpoint_run",
                    [
                        {"waitpoint_id": waitpoint_id, "idx": i, "run_id": r.id}
                        for i, r in enumerate(runs)
                    ],
                )
                if done == len(runs):  # every child was an already finished idempotent run
                    envs |= self._transitions.complete_run_waitpoint(tx, waitpoint_id, batch, now)
            answer: dict[str, Any] = {
                "runs": [{"id": r.id, "is_cached": r.is_cached} for r in runs],
                "batch_id": batch_id,
            }
            if claim is not None:
                answer["is_cached"] = claim.cached
            journal = {
                "run_id": run_id,
                "key": key,
                "value": json_text(answer),
                "waitpoint_id": waitpoint_id,
                "now": now,
            }
            if existing is not None:
                tx.run("replace_trigger_journal", **journal, attempt=parent["attempt_count"])
            elif wait:
                tx.run("insert_trigger_journal", **journal, attempt=parent["attempt_count"])
            else:
                tx.run("insert_journal", **journal)
            entry = tx.one("get_journal_entry", run_id=run_id, key=key)
            assert entry is not None
            result = self._answer(tx, entry)
        for env in envs:
            self._events.emit("available", env)
        return result

    @staticmethod
    def _failed_before(tx: Tx, entry: Row, parent: Row) -> list[Row] | None:
        """The children of a journaled trigger the run waits for, in input order, when an
        earlier attempt made it and any of them failed before this attempt began: a retry
        triggers those again. None otherwise: an attempt replays the answers it has waited for
        as they are, failures included, also when it resumes after a wait."""
        made_in = entry["attempt"]
        if made_in is None or made_in >= parent["attempt_count"] or not entry["waitpoint_id"]:
            return None
        waitpoint = tx.one("get_waitpoint", env_id=parent["env_id"], id=entry["waitpoint_id"])
        if waitpoint is None or waitpoint["status"] != "COMPLETED":
            return None
        began = parent["attempt_started_at"]
        if began is not None and waitpoint["completed_at"] > began:  # this attempt waited for it
            return None
        children = tx.all("waitpoint_run_results", waitpoint_id=entry["waitpoint_id"])
        if all(c["status"] == RunStatus.COMPLETED for c in children):
            return None
        return children

    def _answer(self, tx: Tx, entry: Row) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(entry["value"]) if entry["value"] else {}
        if entry["waitpoint_id"]:
            rows = tx.all("get_waitpoints_by_id", ids=[entry["waitpoint_id"]])
            answer["waitpoint"] = _waitpoint_state(rows[0]) if rows else None
        return answer

    def wait_until(
        self,
        run_id: str,
        key: str,
        until: float,
        *,
        seconds: float | None = None,
        holder: Holder | None = None,
    ) -> dict[str, Any]:
        """A journaled duration wait: the waitpoint completes at `until`, or, given `seconds` (a
        `wait.for_`), that long from now on the engine's clock: a worker's clock may be off, and
        a duration must not stretch or vanish with it. The answer says how long is `remaining`,
        on the engine's clock too."""
        now = self._clock()
        if seconds is not None:
            until = now + seconds
        with self._store.transaction() as tx:
            self._transitions.check_holder(tx, run_id, holder)
            existing = tx.one("get_journal_entry", run_id=run_id, key=key)
            if existing is None:
                run = tx.one("get_run_by_id", id=run_id)
                if run is None:
                    raise NotFound(f"run {run_id} not found")
                waitpoint_id = new_id("wait", now)
                done = until <= now
                tx.run(
                    "insert_waitpoint",
                    id=waitpoint_id,
                    env_id=run["env_id"],
                    kind="duration",
                    status="COMPLETED" if done else "PENDING",
                    owner_run_id=run_id,
                    complete_at=until,
                    batch_id=None,
                    run_count=0,
                    done_count=0,
                    idempotency_key=None,
                    tags="[]",
                    result=json_text({"ok": True}) if done else None,
                    now=now,
                    completed_at=now if done else None,
                )
                tx.run(
                    "insert_journal",
                    run_id=run_id,
                    key=key,
                    value=json_text({"until": until}),
                    waitpoint_id=waitpoint_id,
                    now=now,
                )
                existing = tx.one("get_journal_entry", run_id=run_id, key=key)
            assert existing is not None
            answer = self._answer(tx, existing)
        waitpoint = answer.get("waitpoint")
        if waitpoint is not None and waitpoint.get("complete_at") is not None:
            waitpoint["remaining"] = max(0.0, waitpoint["complete_at"] - now)
        return answer

    def wait_token(
        self, run_id: str, key: str, token_id: str, *, holder: Holder | None = None
    ) -> dict[str, Any]:
        """Journal that a run waits on a token; the token's state now."""
        now = self._clock()
        with self._store.transaction() as tx:
            self._transitions.check_holder(tx, run_id, holder)
            run = tx.one("get_run_by_id", id=run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            if tx.one("get_waitpoint", env_id=run["env_id"], id=token_id) is None:
                raise NotFound(f"token {token_id} not found")
            tx.run(
                "insert_journal",
                run_id=run_id,
                key=key,
                value=json_text({"token_id": token_id}),
                waitpoint_id=token_id,
                now=now,
            )
            entry = tx.one("get_journal_entry", run_id=run_id, key=key)
            assert entry is not None
            return self._answer(tx, entry)

    def suspend(
        self,
        worker_id: str,
        run_id: str,
        attempt: int,
        waitpoint_ids: list[str],
        compute_used: float,
        fence: int,
    ) -> dict[str, Any]:
        """Suspend an executing run on waitpoints: WAITING, no slot, no worker. If every one of
        them has completed meanwhile, the run is not suspended and gets their results."""
        now = self._clock()
        with self._store.transaction() as tx:
            row = tx.one("get_run_by_id", id=run_id)
            if (
                row is not None
            ):  # a waitpoint completing meanwhile must see the run suspended, or it must not
                tx.lock(row["env_id"])
                row = tx.one("get_run_by_id", id=run_id)
            if (
                row is None
                or row["status"] != RunStatus.EXECUTING
                or row["worker_id"] != worker_id
                or row["attempt_count"] != attempt
                or row["fence"] != fence
            ):
                return {"suspended": False, "gone": True}
            waitpoints = tx.all("get_waitpoints_by_id", ids=waitpoint_ids)
            if len(waitpoints) != len(set(waitpoint_ids)):
                raise NotFound("a waitpoint the run waits on does not exist")
            pending = [w["id"] for w in waitpoints if w["status"] == "PENDING"]
            if not pending:
                return {
                    "suspended": False,
                    "results": {w["id"]: _waitpoint_state(w) for w in waitpoints},
                }
            tx.run("suspend_run", id=run_id, compute_used=compute_used, now=now)
            tx.run_many("insert_run_wait", [{"run_id": run_id, "waitpoint_id": w} for w in pending])
        self._events.emit("available", row["env_id"])  # its slot is free
        self._events.changed(row["env_id"], [run_id])
        return {"suspended": True}


def _moment(value: Any) -> float | None:
    """An epoch time a worker sent, or None when it sent none or nonsense (the trace then falls
    back to when the engine heard of the call; a bad timestamp must not fail the run)."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    return None


def _waitpoint_state(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "complete_at": row["complete_at"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }
