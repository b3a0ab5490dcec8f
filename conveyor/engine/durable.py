"""Durable execution in the engine: the journal, waitpoints, suspending and resuming runs.

A durable call of a run (a step, a trigger, a wait, a token) is journaled under its key
(`kind:name#occurrence`) in the same transaction as its effect, so a call made once is never
made again: a replay of the run finds the answer in the journal. A call that has to wait
(a duration, a child run, a batch, a token) journals the waitpoint whose result will be its
answer. A run suspended on waitpoints is WAITING: no slot, no process. Completing the last
pending waitpoint it waits on queues it again, and its next lease continues the same attempt.

This is part of `Engine` (a base class of it), kept apart because it is one concept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.durations import MAX_SECONDS
from conveyor.engine.views import json_text
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError, StaleAttempt
from conveyor.ids import new_id
from conveyor.models import FINAL_STATUSES, RunStatus, TriggerOptions
from conveyor.serialization import json_problem
from conveyor.store import Row, Store, Tx


@dataclass(frozen=True, slots=True)
class Holder:
    """The attempt a durable call comes from: its worker and fence (see protocol.py)."""

    worker_id: str
    fence: int


def holds(row: Row | None, worker_id: str, fence: int) -> bool:
    """Whether the attempt of `worker_id` with `fence` is the one executing the run now."""
    return (
        row is not None
        and row["status"] == RunStatus.EXECUTING
        and row["worker_id"] == worker_id
        and row["fence"] == fence
    )


def run_result(row: Row) -> dict[str, Any]:
    """How a run ended, as the parent waiting for it sees it (a Result)."""
    ok = row["status"] == RunStatus.COMPLETED
    return {
        "ok": ok,
        "id": row["id"],
        "task_id": row["task_id"],
        "status": row["status"],
        "output": json.loads(row["output"]) if ok and row["output"] is not None else None,
        "error": None
        if ok
        else (json.loads(row["error"]) if row["error"] else {"message": row["status"]}),
    }


class DurableExecution:
    """The durable half of the Engine (see the module docstring)."""

    store: Store
    clock: Callable[[], float]
    _emit: Callable[..., None]
    _create_runs: Callable[..., Any]

    # -- calls made by runs -----------------------------------------------------------------

    def run_call(
        self, env_id: str, run_id: str, op: str, args: dict[str, Any], *, worker_id: str, fence: int
    ) -> Any:
        """A durable call made by a run of `env_id`, as a worker relays it (see worker/replay.py).
        Made only for the attempt holding the run now (`worker_id`, `fence`), checked in the
        transaction of the call's effect: StaleAttempt otherwise (canceled, ended, taken back)."""
        with self.store.read() as tx:
            run = tx.one("get_run", env_id=env_id, id=run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        _check_call_args(op, args)
        holder = Holder(worker_id, fence)
        if op == "journal":
            return self.journal_put(
                run_id,
                args["key"],
                args["value"],
                started_at=_moment(args.get("started_at")),
                holder=holder,
            )
        if op == "durable_trigger":
            return self.durable_trigger(
                run_id,
                args["key"],
                [tuple(i) for i in args["items"]],
                wait=args["wait"],
                batch=args["batch"],
                holder=holder,
            )
        if op == "wait_until":
            return self.wait_until(
                run_id, args["key"], args["until"], seconds=args.get("seconds"), holder=holder
            )
        if op == "create_token":
            return self.create_token(
                env_id,
                timeout=args["timeout"],
                idempotency_key=args["idempotency_key"],
                tags=args["tags"],
                run_id=run_id,
                key=args["key"],
                holder=holder,
            )
        if op == "wait_token":
            return self.wait_token(run_id, args["key"], args["token_id"], holder=holder)
        self.complete_token(
            env_id, args["token_id"], args["data"], holder=(run_id, holder)
        )  # complete_token
        return self.journal_put(run_id, args["key"], {}, holder=holder)

    @staticmethod
    def _check_holder(tx: Tx, run_id: str, holder: Holder | None) -> None:
        """StaleAttempt unless the attempt of `holder` executes the run now. The run row stays
        locked (on PostgreSQL) until the call's effect commits, so a cancel or take-back comes
        either before the check or after the effect."""
        if holder is None:
            return
        row = tx.one("lock_run_by_id", id=run_id)
        if not holds(row, holder.worker_id, holder.fence):
            status = row["status"] if row is not None else "gone"
            raise StaleAttempt(
                f"run {run_id} is {status} and this attempt no longer holds it (it was canceled, "
                "has ended, or was taken back from its worker): the call was not made and the "
                "attempt is stopped"
            )

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
        now = self.clock()
        with self.store.transaction() as tx:
            self._check_holder(tx, run_id, holder)
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

    def durable_trigger(
        self,
        run_id: str,
        key: str,
        items: list[tuple[str, Any, dict[str, Any]]],
        *,
        wait: bool,
        batch: bool,
        holder: Holder | None = None,
    ) -> dict[str, Any]:
        """Trigger children of a run as one journaled call; with `wait`, also the waitpoint the
        run will wait on (one run, or the whole batch in input order)."""
        now = self.clock()
        options = []
        for index, (_, _, raw) in enumerate(items):
            try:
                options.append(TriggerOptions.model_validate(raw))
            except ValueError as exc:
                raise InvalidRequest(f"items[{index}]: invalid trigger options: {exc}") from exc
        envs: set[str] = set()
        with self.store.transaction() as tx:
            parent = tx.one("get_run_by_id", id=run_id)
            if parent is None:
                raise NotFound(f"run {run_id} not found")
            env_id = parent["env_id"]
            tx.lock(env_id)
            self._check_holder(tx, run_id, holder)
            existing = tx.one("get_journal_entry", run_id=run_id, key=key)
            if existing is not None:
                return self._answer(tx, existing)
            batch_id = new_id("batch") if batch else None
            # children a run waits for run on the run's version; others on the current one
            runs, queued = self._create_runs(
                tx,
                env_id,
                [(t, p, o) for (t, p, _), o in zip(items, options, strict=True)],
                now=now,
                parent=parent,
                batch_id=batch_id,
                deployed=parent["version"] is not None,
                version=parent["version"] if wait else None,
            )
            if queued:
                envs.add(env_id)
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
                    envs |= self._complete_run_waitpoint(tx, waitpoint_id, batch, now)
            answer = {
                "runs": [{"id": r.id, "is_cached": r.is_cached} for r in runs],
                "batch_id": batch_id,
            }
            tx.run(
                "insert_journal",
                run_id=run_id,
                key=key,
                value=json_text(answer),
                waitpoint_id=waitpoint_id,
                now=now,
            )
            entry = tx.one("get_journal_entry", run_id=run_id, key=key)
            assert entry is not None
            result = self._answer(tx, entry)
        for env in envs:
            self._emit("available", env)
        return result

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
        now = self.clock()
        if seconds is not None:
            until = now + seconds
        with self.store.transaction() as tx:
            self._check_holder(tx, run_id, holder)
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

    # -- tokens -----------------------------------------------------------------------------

    def token_secret(self) -> bytes:
        """The key that signs token callback URLs (made once per database)."""
        secret: bytes | None = getattr(self, "_token_secret", None)
        if secret is None:
            with self.store.transaction() as tx:
                tx.run("put_setting", name="token_secret", value=secrets.token_hex(32))
                row = tx.one("get_setting", name="token_secret")
            assert row is not None
            secret = self._token_secret = bytes.fromhex(row["value"])
        return secret

    def token_signature(self, token_id: str) -> str:
        return hmac.new(self.token_secret(), token_id.encode(), hashlib.sha256).hexdigest()[:32]

    def check_token_signature(self, token_id: str, signature: str) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters, and a URL may hold any
        return hmac.compare_digest(
            self.token_signature(token_id).encode(), signature.encode("utf-8", "replace")
        )

    def create_token(
        self,
        env_id: str,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
        run_id: str | None = None,
        key: str | None = None,
        holder: Holder | None = None,
    ) -> dict[str, Any]:
        """A token: a waitpoint that something outside completes (or that times out)."""
        now = self.clock()
        if timeout is not None and not 0 <= timeout <= MAX_SECONDS:
            raise InvalidRequest(
                f"token timeout must be between 0 and {MAX_SECONDS:g} seconds (a century)"
            )
        if tags is not None and (
            len(tags) > 10 or any(not isinstance(t, str) or not 1 <= len(t) <= 128 for t in tags)
        ):
            raise InvalidRequest("at most 10 tags of 1 to 128 characters")
        with self.store.transaction() as tx:
            tx.lock(env_id)
            if run_id:
                self._check_holder(tx, run_id, holder)
            entry = tx.one("get_journal_entry", run_id=run_id, key=key) if run_id and key else None
            if entry is not None:  # made before this replay: the same token
                row = tx.one("get_waitpoint", env_id=env_id, id=json.loads(entry["value"])["id"])
            elif idempotency_key:
                row = tx.one("find_token_by_key", env_id=env_id, key=idempotency_key)
            else:
                row = None
            if row is None:
                token_id = new_id("token", now)
                tx.run(
                    "insert_waitpoint",
                    id=token_id,
                    env_id=env_id,
                    kind="token",
                    status="PENDING",
                    owner_run_id=run_id,
                    complete_at=now + timeout if timeout else None,
                    batch_id=None,
                    run_count=0,
                    done_count=0,
                    idempotency_key=idempotency_key,
                    tags=json_text(tags or []),
                    result=None,
                    now=now,
                    completed_at=None,
                )
                row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
            assert row is not None
            if run_id and key and entry is None:
                tx.run(
                    "insert_journal",
                    run_id=run_id,
                    key=key,
                    value=json_text({"id": row["id"]}),
                    waitpoint_id=None,
                    now=now,
                )
            view = self._token_view(row)
        return self._with_url(view)

    def wait_token(
        self, run_id: str, key: str, token_id: str, *, holder: Holder | None = None
    ) -> dict[str, Any]:
        """Journal that a run waits on a token; the token's state now."""
        now = self.clock()
        with self.store.transaction() as tx:
            self._check_holder(tx, run_id, holder)
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

    def complete_token(
        self, env_id: str, token_id: str, data: Any, *, holder: tuple[str, Holder] | None = None
    ) -> dict[str, Any]:
        """Complete a token with JSON `data`; runs waiting on it resume. `holder`: the run and
        attempt completing it from inside a run, which must hold its run."""
        try:
            json_text(data)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"token data is not JSON: {exc}") from exc
        problem = json_problem(data, "token data")
        if problem:
            raise PayloadError(problem)
        now = self.clock()
        with self.store.transaction() as tx:
            tx.lock(env_id)
            if holder is not None:
                self._check_holder(tx, *holder)
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
            if row is None or row["kind"] != "token":
                raise NotFound(f"token {token_id} not found")
            if row["status"] != "PENDING":
                raise Conflict(f"token {token_id} is already {row['status'].lower()}")
            envs = self._complete_waitpoints(
                tx, [(token_id, "COMPLETED", json_text({"ok": True, "output": data}))], now
            )
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
        for env in envs:
            self._emit("available", env)
        return self._with_url(self._token_view(row))

    def token_environment(self, token_id: str) -> str:
        """The environment of a token (for its signed callback, which carries no key)."""
        with self.store.read() as tx:
            rows = tx.all("get_waitpoints_by_id", ids=[token_id])
        if not rows or rows[0]["kind"] != "token":
            raise NotFound(f"token {token_id} not found")
        env_id: str = rows[0]["env_id"]
        return env_id

    def get_token(self, env_id: str, token_id: str) -> dict[str, Any]:
        with self.store.read() as tx:
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
        if row is None or row["kind"] != "token":
            raise NotFound(f"token {token_id} not found")
        return self._with_url(self._token_view(row))

    def list_tokens(
        self, env_id: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        if status is not None and status not in ("PENDING", "COMPLETED", "TIMED_OUT"):
            raise InvalidRequest("status is one of PENDING, COMPLETED, TIMED_OUT")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        with self.store.read() as tx:
            rows = tx.all(
                "list_tokens", env_id=env_id, status=status, cursor=cursor, limit=limit + 1
            )
        tokens = [self._with_url(self._token_view(r)) for r in rows[:limit]]
        return tokens, rows[limit - 1]["id"] if len(rows) > limit else None

    def token_waiters(self, env_id: str, token_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """The runs waiting on each token (`id`, `task_id`, `status`), oldest first; a token no
        run waits on is left out."""
        if not token_ids:
            return {}
        waiters: dict[str, list[dict[str, str]]] = {}
        with self.store.read() as tx:
            for row in tx.all("token_waiters", env_id=env_id, ids=token_ids):
                waiters.setdefault(row["waitpoint_id"], []).append(
                    {"id": row["id"], "task_id": row["task_id"], "status": row["status"]}
                )
        return waiters

    public_url: str | None = None  # where token callback URLs point (the API's base URL)

    def token_url(self, token_id: str) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/api/v1/waitpoints/tokens/{token_id}/callback/{self.token_signature(token_id)}"

    def _with_url(self, view: dict[str, Any]) -> dict[str, Any]:
        view["url"] = self.token_url(view["id"])
        return view

    @staticmethod
    def _token_view(row: Row | None) -> dict[str, Any]:
        assert row is not None
        result = json.loads(row["result"]) if row["result"] else None
        return {
            "id": row["id"],
            "url": None,
            "status": row["status"],
            "idempotency_key": row["idempotency_key"],
            "tags": json.loads(row["tags"]),
            "timeout_at": row["complete_at"],
            "created_at": row["created_at"],
            "completed_at": row["completed_at"],
            "output": (result or {}).get("output"),
            "error": (result or {}).get("error"),
        }

    # -- suspending and resuming ------------------------------------------------------------

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
        now = self.clock()
        with self.store.transaction() as tx:
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
        self._emit("available", row["env_id"])  # its slot is free
        return {"suspended": True}

    def _complete_waitpoints(
        self, tx: Tx, completions: list[tuple[str, str, str]], now: float
    ) -> set[str]:
        """Complete waitpoints (id, status, result JSON) and queue again every suspended run that
        no longer waits on anything pending. Returns the environments with runs to start."""
        done = [
            c
            for c in completions
            if tx.run("complete_waitpoint", id=c[0], status=c[1], result=c[2], now=now)
        ]
        if not done:
            return set()
        envs = set()
        for row in tx.all("runs_waiting_on", ids=[c[0] for c in done]):
            pending = tx.one("pending_waits_of_run", run_id=row["run_id"])
            if pending is not None and pending["n"] == 0:
                tx.run("delete_run_waits", run_id=row["run_id"])
                if tx.run("resume_run", id=row["run_id"], now=now):
                    resumed = tx.one("get_run_by_id", id=row["run_id"])
                    assert resumed is not None
                    envs.add(resumed["env_id"])
        return envs

    def _complete_run_waitpoint(
        self, tx: Tx, waitpoint_id: str, batch: bool, now: float
    ) -> set[str]:
        results = [
            run_result(r) for r in tx.all("waitpoint_run_results", waitpoint_id=waitpoint_id)
        ]
        result = {"ok": True, "runs": results} if batch else results[0]
        return self._complete_waitpoints(tx, [(waitpoint_id, "COMPLETED", json_text(result))], now)

    def _run_ended(self, tx: Tx, run_id: str, now: float) -> set[str]:
        """A run ended: the run and batch waitpoints waiting for it count it, and complete when
        it was the last one they waited for."""
        envs: set[str] = set()
        for w in tx.all("count_waitpoint_runs_done", run_id=run_id):
            if w["done_count"] >= w["run_count"]:
                envs |= self._complete_run_waitpoint(tx, w["id"], w["kind"] == "batch", now)
        return envs

    def _due_waitpoints(self, tx: Tx, env_id: str, now: float) -> set[str]:
        """Durations that have passed complete; tokens past their timeout time out."""
        completions = []
        for w in tx.all("due_waitpoints", env_id=env_id, now=now):
            if w["kind"] == "duration":
                completions.append((w["id"], "COMPLETED", json_text({"ok": True})))
            elif w["kind"] == "token":
                completions.append(
                    (
                        w["id"],
                        "TIMED_OUT",
                        json_text(
                            {
                                "ok": False,
                                "error": {
                                    "name": "WaitpointTimeout",
                                    "code": "timed_out",
                                    "message": "The token was not completed in time.",
                                },
                            }
                        ),
                    )
                )
        return self._complete_waitpoints(tx, completions, now) if completions else set()


_ANY = (object,)
_NUMBER = (int, float)
_NONE = (type(None),)
# op -> argument -> the types it may have; every argument is required (None where allowed).
# Tuples as well as lists: in `conveyor dev` calls arrive pickled, not as JSON.
_CALL_ARGS: dict[str, dict[str, tuple[type, ...]]] = {
    "journal": {"key": (str,), "value": _ANY},
    "durable_trigger": {"key": (str,), "items": (list, tuple), "wait": (bool,), "batch": (bool,)},
    "wait_until": {"key": (str,), "until": _NUMBER},
    "create_token": {
        "key": (str,),
        "timeout": _NUMBER + _NONE,
        "idempotency_key": (str, *_NONE),
        "tags": (list, tuple, *_NONE),
    },
    "wait_token": {"key": (str,), "token_id": (str,)},
    "complete_token": {"key": (str,), "token_id": (str,), "data": _ANY},
}


def _check_call_args(op: str, args: dict[str, Any]) -> None:
    """InvalidRequest for a call a worker could not have meant: an unknown op, or an argument
    missing or of the wrong type (bad input is a 4xx, never a crash in the engine)."""
    spec = _CALL_ARGS.get(op)
    if spec is None:
        raise InvalidRequest(f"unknown call {op!r}; one of {', '.join(_CALL_ARGS)}")
    for name, types in spec.items():
        if name not in args:
            raise InvalidRequest(f"call {op!r} needs the argument {name!r}")
        if not isinstance(args[name], types):
            raise InvalidRequest(
                f"call {op!r}: argument {name!r} has the wrong type ({type(args[name]).__name__})"
            )
    if op == "wait_until" and not isinstance(args.get("seconds"), (*_NUMBER, *_NONE)):
        raise InvalidRequest(
            "call 'wait_until': argument 'seconds' has the wrong type "
            f"({type(args['seconds']).__name__})"
        )
    if op == "durable_trigger":
        for index, item in enumerate(args["items"]):
            if not (
                isinstance(item, list | tuple)
                and len(item) == 3
                and isinstance(item[0], str)
                and isinstance(item[2], dict)
            ):
                raise InvalidRequest(
                    f"call 'durable_trigger': items[{index}] must be [task_id, payload, options]"
                )


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
