"""Tasks: the definitions an environment's code declares, and triggering runs of them (one, or
a batch of up to MAX_BATCH in one transaction). The routes of conveyor/server/api/tasks.py and
the client's `tasks` namespace are this part.

A worker declares the definitions (workers.py, `set_tasks`), a deploy promotes them
(deployments.py); this part reads them and never writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.engine import batches
from conveyor.engine.auth import PublicToken, spend
from conveyor.engine.events import Events
from conveyor.engine.transitions import Transitions, load_failures, why_missing
from conveyor.errors import InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import ModuleFailure, Run, TaskDefinition, TriggerOptions
from conveyor.store import Store, Tx


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    runs: list[Run]
    is_cached: bool = False  # the batch an idempotency key held, returned as it is


class Tasks:
    """Task definitions and triggering (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions

    def get(self, env_id: str, task_id: str) -> TaskDefinition:
        with self._store.read() as tx:
            row = tx.one("get_task", env_id=env_id, task_id=task_id)
            env = tx.one("get_environment", id=env_id) if row is None else None
        if row is None:
            raise NotFound(
                f"task {task_id!r} is not defined in this environment; {why_missing(env)}"
            )
        return TaskDefinition.model_validate_json(row["definition"])

    def load_failures(self, env_id: str) -> list[ModuleFailure]:
        """The task modules that failed to import at the latest load of the worker code."""
        with self._store.read() as tx:
            row = tx.one("get_environment", id=env_id)
        return load_failures(row)

    def trigger(
        self,
        env_id: str,
        task_id: str,
        payload: Any,
        options: TriggerOptions | None = None,
        *,
        parent_id: str | None = None,
        token: PublicToken | None = None,
    ) -> Run:
        """Create a run (or return the run holding the same idempotency key). With a trigger
        `token`, the token is used up in the same transaction (auth.py): a trigger that fails
        leaves it unused, and only one trigger with it ever commits."""
        return self.batch_trigger(
            env_id,
            [(task_id, payload, options or TriggerOptions())],
            parent_id=parent_id,
            record_batch=False,
            token=token,
        ).runs[0]

    def batch_trigger(
        self,
        env_id: str,
        items: list[tuple[str, Any, TriggerOptions]],
        *,
        parent_id: str | None = None,
        record_batch: bool = True,
        replayed_from: str | None = None,
        token: PublicToken | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> BatchResult:
        """Create up to 1,000 runs in one transaction: all of them, or none if any is invalid.
        With an `idempotency_key` (held `idempotency_key_ttl`, 30 days by default), the batch
        that holds the key is returned instead, cached (batches.py says when a key holds)."""
        now = self._clock()
        key = batches.batch_key(idempotency_key, idempotency_key_ttl, now)
        if key is not None and not record_batch:
            raise InvalidRequest("an idempotency key of a batch needs a batch")
        batch_id = new_id("batch") if record_batch else None
        if key is not None:
            with self._store.transaction() as tx:
                result, queued = self._keyed_batch(tx, env_id, items, key, now, parent_id)
            if queued:
                self._events.emit("available", env_id)
            return result
        with self._store.transaction() as tx:
            if parent_id or any(
                options.idempotency_key or options.debounce for _, _, options in items
            ):
                # a plain trigger only inserts; a keyed (or debounced) one must see the key's
                # holder, a child its parent
                tx.lock(env_id)
            if token is not None:  # a trigger token makes one run (`trigger`)
                spend(tx, token, items[0][0], now)
            parent = tx.one("get_run_by_id", id=parent_id) if parent_id else None
            env = tx.one("get_environment", id=env_id)
            runs, queued = self._transitions.create_runs(
                tx,
                env_id,
                items,
                now=now,
                parent=parent,
                batch_id=batch_id,
                replayed_from=replayed_from,
                deployed=env is not None and env["kind"] != "dev",
            )
        if queued:
            self._events.emit("available", env_id)
        return BatchResult(batch_id or "", runs)

    def _keyed_batch(
        self,
        tx: Tx,
        env_id: str,
        items: list[tuple[str, Any, TriggerOptions]],
        key: batches.BatchKey,
        now: float,
        parent_id: str | None,
    ) -> tuple[BatchResult, bool]:
        """A batch with an idempotency key, inside `tx`: the batch holding the key, or a new
        one that holds it (keeping the runs of a batch a failure released it from)."""
        if not items:
            raise InvalidRequest("a batch needs at least one item")
        if parent_id or any(o.idempotency_key or o.debounce for _, _, o in items):
            tx.lock(env_id)  # as an unkeyed batch (below); before the claim, in the same order
        claim = batches.claim(
            tx, env_id, key, [task_id for task_id, _, _ in items], now=now, parent_id=parent_id
        )
        if claim.cached:
            runs = batches.cached_runs(claim.kept)
            return BatchResult(claim.batch_id, runs, is_cached=True), False
        fresh = [i for i, kept in enumerate(claim.kept) if kept is None]
        parent = tx.one("get_run_by_id", id=parent_id) if parent_id else None
        env = tx.one("get_environment", id=env_id)
        made, queued = self._transitions.create_runs(
            tx,
            env_id,
            [items[i] for i in fresh],
            now=now,
            parent=parent,
            batch_id=claim.batch_id,
            deployed=env is not None and env["kind"] != "dev",
            batch_recorded=True,
        )
        runs = batches.merged(claim.kept, dict(zip(fresh, made, strict=True)))
        batches.record(tx, claim.batch_id, runs)
        return BatchResult(claim.batch_id, runs), queued

    def reset_batch_idempotency_key(self, env_id: str, key: str) -> bool:
        """Release a batch's `key` (`idempotency_keys.reset_batch`): the next batch call with it
        makes a new batch. Whether a batch held it."""
        if not isinstance(key, str) or not key:
            raise InvalidRequest("an idempotency key is non-empty text")
        with self._store.transaction() as tx:
            return batches.release(tx, env_id, key)

    def reset_idempotency_key(self, env_id: str, task_id: str, key: str) -> bool:
        """Release `key` for `task_id` (`idempotency_keys.reset`): the next trigger with it
        makes a new run. Whether a run held it; NotFound for a task the environment has
        neither defined nor run with the key."""
        with self._store.transaction() as tx:
            tx.lock(env_id)  # as a keyed trigger does: it sees the key held, or released
            holder = tx.one("find_idempotent_run", env_id=env_id, task_id=task_id, key=key)
            if holder is None:
                if tx.one("get_task", env_id=env_id, task_id=task_id) is None:
                    raise NotFound(f"task {task_id!r} is not defined in this environment")
                return False
            tx.run("release_idempotency_key", id=holder["id"])
        return True

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, env_id: str) -> list[TaskDefinition]:
        with self._store.read() as tx:
            rows = tx.all("list_tasks", env_id=env_id)
        return [TaskDefinition.model_validate_json(r["definition"]) for r in rows]
