"""The run state machine, shared by the engine's parts: runs are created, settled and ended here.

Run state changes only through this module (the parts call it inside their transactions):

    trigger ─▶ DELAYED ─(tick)─▶ QUEUED ─(lease)─▶ EXECUTING ─(complete)─▶ COMPLETED
                  │                 │  ▲                 │               FAILED / TIMED_OUT /
                  │                 │  └── retry delay ──┘               CRASHED / SYSTEM_FAILURE
                  └──── cancel ─────┴─▶ CANCELED   QUEUED past ttl ─(tick)─▶ EXPIRED

    EXECUTING ─(suspend)─▶ WAITING ─(its last pending waitpoint completes)─▶ QUEUED (resuming)
    trigger of a task no version defines ─▶ PENDING_VERSION ─(a version defines it)─▶ QUEUED

Every transaction that reads runs in order to change them first locks their environment
(`tx.lock(env_id)`): on SQLite, which has one writer, that costs nothing; on PostgreSQL it makes
several servers' changes to one environment take turns, so checks such as "the run is still
QUEUED" or "this was the last child" hold until the change commits. Leasing is the exception
(see workers.py): it locks the queues it starts runs from (skipping queues another lease holds)
and the runs it picks (skipping runs another transaction holds), so workers lease in parallel
and every queue limit is still checked by one lease at a time.

A run that ends owing a lifecycle hook (on_success, on_failure, on_cancel) keeps it in its `hook`
column until a worker reports it ran, so a hook fires even when the run ended without a worker
(expired, canceled while queued, crashed, timed out by a kill). on_complete rides with
on_success or on_failure: the worker that runs the one runs the other after it.

Every method takes the caller's open transaction `tx` and returns the environments where workers
should look again; the caller emits "available" for them after the commit. Nothing here opens a
transaction or emits an event, and nothing here is called from outside conveyor.engine.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import jsonschema

from conveyor import retries
from conveyor.durations import MAX_SECONDS, parse_duration, resolve_when
from conveyor.engine.observers import Observers
from conveyor.engine.schedule_rows import declare
from conveyor.engine.trigger_rules import debounce, merged_queue, queue_columns, trigger_queue
from conveyor.engine.views import json_text, run_view
from conveyor.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadError,
    StaleAttempt,
    TransactionConflict,
)
from conveyor.ids import new_id
from conveyor.models import (
    FAILURE_STATUSES,
    MACHINES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_HINT,
    ModuleFailure,
    QueueSpec,
    RetryPolicy,
    Run,
    RunStatus,
    TaskDefinition,
    TriggerOptions,
)
from conveyor.protocol import AttemptOutcome, OutcomeKind
from conveyor.serialization import json_problem
from conveyor.store import Row, Store, Tx

MAX_BATCH = 1000
DEFAULT_IDEMPOTENCY_TTL = 30 * 86400.0

# outcome kind -> (status when final, retried?)
_OUTCOMES: dict[str, tuple[RunStatus, bool]] = {
    "completed": (RunStatus.COMPLETED, False),
    "failed": (RunStatus.FAILED, True),
    "aborted": (RunStatus.FAILED, False),
    "payload_invalid": (RunStatus.FAILED, False),
    "timed_out": (RunStatus.TIMED_OUT, False),
    "crashed": (RunStatus.CRASHED, True),
    "interrupted": (RunStatus.CRASHED, True),
    "system_failure": (RunStatus.SYSTEM_FAILURE, False),
}


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


T = TypeVar("T")
DEADLOCK_TRIES = 3
# (tx, the run's row before it ended, its final status, its error, now)
RunEnded = Callable[[Tx, Row, RunStatus, "dict[str, Any] | None", float], None]


def again_after_deadlock(change: Callable[[], T]) -> T:
    """`change` (one transaction), made again when the database undid it to break a deadlock:
    a cancel locks a run and then its children, a metadata batch children and then their
    parents (PostgreSQL picks one of the two to undo)."""
    for tries_left in range(DEADLOCK_TRIES - 1, -1, -1):
        try:
            return change()
        except TransactionConflict:
            if not tries_left:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def stale_attempt(run_id: str, row: Row | None) -> StaleAttempt:
    """What a call of an attempt that no longer holds its run is told."""
    status = row["status"] if row is not None else "gone"
    return StaleAttempt(
        f"run {run_id} is {status} and this attempt no longer holds it (it was canceled, "
        "has ended, or was taken back from its worker): the call was not made and the "
        "attempt is stopped"
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


class Transitions:
    """The run state machine (see the module docstring), given to the parts that change runs."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        observers: Observers | None = None,
        run_ended: RunEnded | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.observers = Observers() if observers is None else observers
        # told of every run's end inside its transaction (alerts.py: a failure owes an alert)
        self.run_ended = run_ended
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._validators_lock = threading.Lock()
        self._definitions: dict[str, TaskDefinition] = {}
        # (env, version): its tasks
        self._versions: dict[tuple[str, str], dict[str, TaskDefinition]] = {}

    # -- creating runs --------------------------------------------------------------------

    def create_runs(
        self,
        tx: Tx,
        env_id: str,
        items: list[tuple[str, Any, TriggerOptions]],
        *,
        now: float,
        parent: Row | None,
        batch_id: str | None,
        replayed_from: str | None = None,
        deployed: bool = False,
        version: str | None = None,
        checked: bool = False,
        batch_recorded: bool = False,
    ) -> tuple[list[Run], bool]:
        """Insert the runs of a trigger or batch inside `tx`. Returns the runs in input order (an
        existing run where an idempotency key matched) and whether any is queued now.

        With `version` the runs are locked to that deployed version from the start and take its
        task definitions (children a run waits for). In a `deployed` environment a task that no
        version defines yet is no error: its run waits in PENDING_VERSION for a deploy.
        `checked`: the engine made the payloads to the tasks' schema (a schedule's), so they are
        not checked against it again. `batch_recorded`: the batch's row exists already (a keyed
        batch's, batches.py)."""
        if not items:
            raise InvalidRequest("a batch needs at least one item")
        if len(items) > MAX_BATCH:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH} items, got {len(items)}")
        definitions: dict[str, TaskDefinition] = {}
        runs: list[Run] = []
        rows: list[dict[str, Any]] = []
        fresh_keys: dict[tuple[str, str], Run] = {}
        gathered: dict[tuple[str, str], dict[str, Any]] = {}  # debounced rows of this batch
        locked = self.version_tasks(tx, env_id, version) if version is not None else None
        for index, (task_id, payload, options) in enumerate(items):
            where = f"items[{index}]: " if batch_id else ""
            task = definitions.get(task_id)
            pending = False
            if task is None:
                if locked is not None:
                    found = locked.get(task_id)
                    if found is None:
                        raise NotFound(
                            f"{where}task {task_id!r} is not defined in version {version}, which "
                            "this run is locked to; deploy it, then trigger it from a run that "
                            "starts on the new version"
                        )
                    task = definitions[task_id] = found
                else:
                    row = tx.one("get_task", env_id=env_id, task_id=task_id)
                    if row is not None:
                        task = definitions[task_id] = self._definition(row["definition"])
                    elif deployed:
                        pending = True
                        task = _undeployed(task_id)
                    else:
                        env_row = tx.one("get_environment", id=env_id)
                        raise NotFound(
                            f"{where}task {task_id!r} is not defined in this environment; "
                            f"{why_missing(env_row)}"
                        )
            if not pending and not checked:
                self._validate_payload(task, payload, where)
            if options.idempotency_key:
                existing = tx.one(
                    "find_idempotent_run",
                    env_id=env_id,
                    task_id=task_id,
                    key=options.idempotency_key,
                )
                if existing is not None:
                    expires = existing["idempotency_expires_at"]
                    if expires is None or expires > now:
                        run = run_view(existing)
                        run.is_cached = True
                        runs.append(run)
                        continue
                    tx.run("release_idempotency_key", id=existing["id"])
                twin = fresh_keys.get((task_id, options.idempotency_key))
                if twin is not None:  # the same key twice in one batch: one run
                    runs.append(twin)
                    continue
            row = _new_run_row(env_id, task, payload, options, now, parent, batch_id, where)
            if options.debounce is not None and pending:
                raise Conflict(
                    f"{where}task {task_id!r} has no deployed version yet, and a debounced run "
                    "waits for one: deploy it first, or trigger without debounce"
                )
            if options.debounce is not None:
                debounced = debounce(tx, row, options.debounce, now, where, gathered)
                if debounced is not None:  # the run already gathering this key's triggers
                    runs.append(debounced)
                    if options.idempotency_key and debounced.idempotency_key == (
                        options.idempotency_key
                    ):  # it took this trigger's key: a later item with the key finds it
                        fresh_keys[(task_id, options.idempotency_key)] = debounced
                    continue
            row["replayed_from"] = replayed_from
            row["version"] = version
            if pending:  # the task's settings come with the version that defines it
                row.update(
                    status=RunStatus.PENDING_VERSION,
                    expires_at=None,
                    trigger_options=options.model_dump_json(exclude_defaults=True),
                )
            if options.queue is not None:
                trigger_queue(tx, env_id, options.queue, where, now)
            if options.concurrency_key is not None:
                tx.run("mark_queue_keyed", env_id=env_id, name=row["queue"])
            rows.append(row)
            runs.append(run_view(row))
            if options.idempotency_key:
                fresh_keys[(task_id, options.idempotency_key)] = runs[-1]
        tx.run_many("insert_run", rows)
        if batch_id is not None and not batch_recorded:
            tx.run(
                "insert_batch",
                id=batch_id,
                env_id=env_id,
                task_id=items[0][0] if len({i[0] for i in items}) == 1 else None,
                run_count=len(items),
                parent_id=parent["id"] if parent else None,
                now=now,
            )
        return runs, any(row["status"] == RunStatus.QUEUED for row in rows)

    def _definition(self, text: str) -> TaskDefinition:
        """A task definition parsed once per distinct text (a trigger reads it every time)."""
        task = self._definitions.get(text)
        if task is None:
            if len(self._definitions) > 10_000:
                self._definitions.clear()
            task = self._definitions[text] = TaskDefinition.model_validate_json(text)
        return task

    def _validate_payload(self, task: TaskDefinition, payload: Any, where: str) -> None:
        if task.payload_schema is None:
            return
        key = task.id + "\0" + json_text(task.payload_schema)
        with self._validators_lock:
            validator = self._validators.get(key)
            if validator is None:
                cls = jsonschema.validators.validator_for(task.payload_schema)
                validator = self._validators[key] = cls(task.payload_schema)
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
        if errors:
            parts = []
            for error in errors[:5]:
                field = ".".join(str(p) for p in error.absolute_path) or "payload"
                parts.append(f"{field}: {error.message}")
            raise PayloadError(
                f"{where}payload does not match the schema of task {task.id!r}: " + "; ".join(parts)
            )

    # -- task definitions and versions ----------------------------------------------------

    @staticmethod
    def refuse_local_code(tx: Tx, env_id: str) -> None:
        env = tx.one("get_environment", id=env_id)
        if env is not None and env["current_version"] is not None:
            raise Conflict(
                f"the {env['slug']} environment runs deployed code (version "
                f"{env['current_version']}): start workers for it with `conveyor worker --env "
                f"{env['kind']}`, which fetch the deployed versions, rather than with the code of "
                "a project folder"
            )

    def put_tasks(self, tx: Tx, env_id: str, tasks: list[TaskDefinition], now: float) -> None:
        """Replace the environment's task definitions, queue the PENDING_VERSION runs of the
        tasks now defined, and keep the declarative schedules in step with them."""
        declared: dict[str, QueueSpec] = {}
        for task in tasks:
            tx.run(
                "upsert_task",
                env_id=env_id,
                task_id=task.id,
                queue=task.queue.name,
                definition=task.model_dump_json(),
                now=now,
            )
            # a queue shared by tasks takes the limits any of them declares
            declared[task.queue.name] = merged_queue(declared.get(task.queue.name), task.queue)
        for spec in declared.values():
            tx.run("declare_queue", env_id=env_id, now=now, **queue_columns(spec))
        if tasks:
            tx.run("delete_tasks_except", env_id=env_id, keep=[t.id for t in tasks])
            _resolve_pending(tx, env_id, tasks, now)
        else:
            tx.run("delete_all_tasks", env_id=env_id)
        env = tx.one("get_environment", id=env_id)
        declare(tx, env_id, tasks, dev=env is not None and env["kind"] == "dev", now=now)

    def version_tasks(self, tx: Tx, env_id: str, version: str) -> dict[str, TaskDefinition]:
        """The tasks a version defines, by id (read once: a version never changes)."""
        found = self._versions.get((env_id, version))
        if found is None:
            row = tx.one("get_deployment", env_id=env_id, version=version)
            if row is None:
                raise NotFound(f"version {version!r} is not deployed in this environment")
            found = {t["id"]: TaskDefinition.model_validate(t) for t in json.loads(row["tasks"])}
            if len(self._versions) > 1000:
                self._versions.clear()
            self._versions[(env_id, version)] = found
        return found

    # -- attempts and ends ----------------------------------------------------------------

    def settle(self, tx: Tx, row: Row, outcome: AttemptOutcome, now: float) -> set[str]:
        """Apply one attempt's outcome to its run. Returns the environments where workers
        should look again (a run went back to its queue, a hook is owed, a parent resumed)."""
        final_status, retriable = _OUTCOMES[outcome.kind]
        attempt = row["attempt_count"]
        attempt_status = {"completed": "COMPLETED", "interrupted": "INTERRUPTED"}.get(
            outcome.kind, final_status.value
        )
        error_json = json_text(outcome.error) if outcome.error is not None else None
        self._end_attempt(tx, row, attempt_status, error_json, now)
        if outcome.kind == "interrupted":
            tx.run("requeue_interrupted", id=row["id"], error=error_json, now=now)
            return {row["env_id"]}
        larger = _larger_machine(row, outcome)
        if larger is not None:
            tx.run("requeue_on_machine", id=row["id"], error=error_json, machine=larger, now=now)
            return {row["env_id"]}
        if retriable and attempt < row["max_attempts"]:
            retry = RetryPolicy.model_validate_json(row["retry"])
            delay = retries.retry_delay_ms(retry, attempt) / 1000.0
            if outcome.retry_at is not None and math.isfinite(outcome.retry_at):
                delay = min(max(0.0, outcome.retry_at - now), MAX_SECONDS)  # catch_error's time
            tx.run("requeue_run", id=row["id"], error=error_json, available_at=now + delay, now=now)
            return {row["env_id"]}
        output = outcome.output_json if outcome.kind == "completed" else None
        return self.finish(tx, row, final_status, output, outcome.error, now)

    @staticmethod
    def _end_attempt(tx: Tx, row: Row, status: str, error_json: str | None, now: float) -> None:
        """Record the run's current attempt as ended with `status`, and the compute seconds it
        used (its time before suspensions, and since it last started or resumed)."""
        seconds = attempt_compute(row, now)
        tx.run(
            "insert_attempt",
            run_id=row["id"],
            number=row["attempt_count"],
            status=status,
            worker_id=row["worker_id"],
            started_at=row["attempt_started_at"] or now,
            now=now,
            error=error_json,
            compute_seconds=seconds,
        )
        if seconds > 0:
            tx.run("add_run_compute", id=row["id"], seconds=seconds)

    def finish(
        self,
        tx: Tx,
        row: Row,
        status: RunStatus,
        output_json: str | None,
        error: dict[str, Any] | None,
        now: float,
    ) -> set[str]:
        """End a run: its final status, the hook it owes, and the waitpoints waiting for it."""
        hooks = row["hooks"]
        hook = None  # on_complete is owed with the hook of how the run ended (it runs after it)
        if status == RunStatus.COMPLETED and ("on_success" in hooks or "on_complete" in hooks):
            hook = "on_success"
        elif status in FAILURE_STATUSES and ("on_failure" in hooks or "on_complete" in hooks):
            hook = "on_failure"
        elif status == RunStatus.CANCELED and "on_cancel" in hooks:
            hook = "on_cancel"
        tx.run(
            "finish_run",
            id=row["id"],
            status=status.value,
            output=output_json,
            error=json_text(error) if error is not None else None,
            hook=hook,
            now=now,
        )
        if row["status"] == RunStatus.WAITING:
            tx.run("delete_run_waits", run_id=row["id"])
        if self.run_ended is not None:
            self.run_ended(tx, row, status, error, now)
        if self.observers:
            started = row.get("started_at")
            seconds = None if started is None else max(0.0, now - started)
            tx.after_commit(
                partial(
                    self.observers.run_finished,
                    row["env_id"],
                    row["task_id"],
                    status.value,
                    seconds,
                )
            )
        envs = self._run_ended(tx, row["id"], now)
        if hook is not None:
            envs.add(row["env_id"])
        return envs

    def take_back(
        self, tx: Tx, row: Row, kind: OutcomeKind, name: str, message: str, now: float
    ) -> set[str]:
        """End the attempt of an executing run without its worker: the run's fence goes up
        first, so whatever that attempt still reports is refused."""
        tx.run("revoke_fence", id=row["id"])
        return self.settle(
            tx,
            row,
            AttemptOutcome(
                row["id"],
                row["attempt_count"],
                kind,
                error={"name": name, "code": kind, "message": message},
            ),
            now,
        )

    def cancel(self, tx: Tx, row: Row, now: float, stopped: list[str], depth: int = 0) -> set[str]:
        """Cancel a run that has not ended and its unfinished children; the ids of executing
        runs (whose workers must stop them) are added to `stopped`."""
        error = {
            "name": "Canceled",
            "code": "canceled",
            "message": "The run was canceled." if depth == 0 else "Its parent run was canceled.",
        }
        if row["status"] == RunStatus.EXECUTING:
            self._end_attempt(tx, row, "CANCELED", json_text(error), now)
            # the attempt's reports and durable calls are refused now
            tx.run("revoke_fence", id=row["id"])
            stopped.append(row["id"])
        envs = self.finish(tx, row, RunStatus.CANCELED, None, error, now)
        if row["status"] == RunStatus.EXECUTING:
            # its slot stays taken until the worker has stopped the body
            tx.run("mark_stopping", id=row["id"])
        for child in tx.all("unfinished_children", parent_id=row["id"]):
            envs |= self.cancel(tx, child, now, stopped, depth + 1)
        return envs

    @staticmethod
    def check_holder(tx: Tx, run_id: str, holder: Holder | None) -> Row | None:
        """StaleAttempt unless the attempt of `holder` executes the run now; the run's row, read
        under its lock (None without a holder). The row stays locked (on PostgreSQL) until the
        call's effect commits, so a cancel or take-back comes either before the check or after
        the effect."""
        if holder is None:
            return None
        row = tx.one("lock_run_by_id", id=run_id)
        if not holds(row, holder.worker_id, holder.fence):
            raise stale_attempt(run_id, row)
        return row

    # -- waitpoints -----------------------------------------------------------------------

    def complete_waitpoints(
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

    def complete_run_waitpoint(
        self, tx: Tx, waitpoint_id: str, batch: bool, now: float
    ) -> set[str]:
        """Complete the waitpoint of a child run (or a batch) with its result(s)."""
        results = [
            run_result(r) for r in tx.all("waitpoint_run_results", waitpoint_id=waitpoint_id)
        ]
        result = {"ok": True, "runs": results} if batch else results[0]
        return self.complete_waitpoints(tx, [(waitpoint_id, "COMPLETED", json_text(result))], now)

    def _run_ended(self, tx: Tx, run_id: str, now: float) -> set[str]:
        """A run ended: the run and batch waitpoints waiting for it count it, and complete when
        it was the last one they waited for."""
        envs: set[str] = set()
        for w in tx.all("count_waitpoint_runs_done", run_id=run_id):
            if w["done_count"] >= w["run_count"]:
                envs |= self.complete_run_waitpoint(tx, w["id"], w["kind"] == "batch", now)
        return envs

    def due_waitpoints(self, tx: Tx, env_id: str, now: float) -> set[str]:
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
        return self.complete_waitpoints(tx, completions, now) if completions else set()


def attempt_compute(row: Row, now: float) -> float:
    """The compute seconds of a run's current attempt at `now`: what it used before it was
    suspended (the worker says so when it suspends), plus, while it executes, the time since
    it last started or resumed."""
    used = float(row.get("compute_used") or 0.0)
    if row["status"] == RunStatus.EXECUTING:
        since = row.get("segment_started_at") or row.get("attempt_started_at")
        if since is not None:
            used += max(0.0, now - since)
    return used


def _larger_machine(row: Row, outcome: AttemptOutcome) -> str | None:
    """The machine an attempt that ran out of memory runs again on (`retry.out_of_memory`), or
    None: another outcome, no such option, or the run is on that machine already."""
    if outcome.kind != "crashed" or (outcome.error or {}).get("code") != "out_of_memory":
        return None
    upgrade = RetryPolicy.model_validate_json(row["retry"]).out_of_memory
    if upgrade is None or upgrade.machine == row["machine"] or upgrade.machine not in MACHINES:
        return None
    return upgrade.machine


def _undeployed(task_id: str) -> TaskDefinition:
    """Stand-in settings of a task no version defines yet (its run waits in PENDING_VERSION)."""
    return TaskDefinition(id=task_id, queue=QueueSpec(name=task_id), retry=RetryPolicy())


def load_failures(env: Row | None) -> list[ModuleFailure]:
    """The task modules that failed to import at the latest load of the environment's code."""
    raw = env["load_failures"] if env is not None else None
    return [ModuleFailure.model_validate(f) for f in json.loads(raw)] if raw else []


def why_missing(env: Row | None) -> str:
    """What a 404 for an unknown task adds: the modules that failed to import, or a hint."""
    failures = load_failures(env)
    if failures:
        return "; ".join(f.describe() for f in failures)
    return "check its id, or that the worker has loaded it"


def _new_run_row(
    env_id: str,
    task: TaskDefinition,
    payload: Any,
    options: TriggerOptions,
    now: float,
    parent: Row | None,
    batch_id: str | None,
    where: str,
) -> dict[str, Any]:
    problem = (
        json_problem(payload, f"{where}payload")
        or json_problem(options.metadata, f"{where}metadata")
        or json_problem(
            {
                "tags": options.tags,
                "idempotency_key": options.idempotency_key,
                "concurrency_key": options.concurrency_key,
            },
            f"{where}options",
        )
    )
    if problem:
        raise PayloadError(problem)
    try:
        payload_json = json_text(payload)
        metadata_json = json_text(options.metadata or {})
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{where}payload is not JSON: {exc}") from exc
    if len(payload_json) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{where}payload is {len(payload_json) / 1024**2:.1f} MB of JSON; the limit is "
            f"{MAX_PAYLOAD_BYTES // 1024**2} MB: {MAX_PAYLOAD_HINT}"
        )
    if len(metadata_json) > 256 * 1024:
        raise PayloadError(
            f"{where}metadata is {len(metadata_json) // 1024} KB of JSON; the limit is 256 KB"
        )
    try:
        available_at = resolve_when(options.delay, now) if options.delay is not None else now
        ttl = parse_duration(options.ttl, name="ttl") if options.ttl is not None else task.ttl
        key_ttl = (
            parse_duration(options.idempotency_key_ttl, name="idempotency_key_ttl")
            if options.idempotency_key_ttl is not None
            else DEFAULT_IDEMPOTENCY_TTL
        )
    except ValueError as exc:
        raise InvalidRequest(f"{where}{exc}") from exc
    delayed = available_at > now
    queue = options.queue.name if options.queue else task.queue.name
    run_id = new_id("run", now)
    return {
        "id": run_id,
        "env_id": env_id,
        "task_id": task.id,
        "status": RunStatus.DELAYED if delayed else RunStatus.QUEUED,
        "payload": payload_json,
        "queue": queue,
        "concurrency_key": options.concurrency_key,
        "priority": options.priority,
        "score": available_at - options.priority,
        "available_at": available_at,
        "ttl": ttl,
        "expires_at": None if delayed or ttl is None else available_at + ttl,
        "tags": json_text(options.tags),
        "metadata": metadata_json,
        "idempotency_key": options.idempotency_key,
        "idempotency_expires_at": now + key_ttl if options.idempotency_key else None,
        "max_attempts": options.max_attempts or task.retry.max_attempts,
        "retry": task.retry.model_dump_json(),
        "max_duration": options.max_duration
        if options.max_duration is not None
        else task.max_duration,
        "machine": options.machine or task.machine,
        "hooks": ",".join(task.hooks),
        "parent_id": parent["id"] if parent else None,
        "root_id": (parent["root_id"] or parent["id"]) if parent else None,
        "batch_id": batch_id,
        "replayed_from": None,
        "version": None,
        "trigger_options": None,
        "debounce_key": None,
        "debounce_deadline": None,
        "trace_context": options.trace_context.model_dump_json(exclude_none=True)
        if options.trace_context is not None
        else None,
        "now": now,
        # columns the view reads that the insert leaves to their defaults
        "created_at": now,
        "updated_at": now,
        "attempt_count": 0,
        "output": None,
        "error": None,
        "started_at": None,
        "completed_at": None,
    }


def _resolve_pending(tx: Tx, env_id: str, tasks: list[TaskDefinition], now: float) -> None:
    """Queue the PENDING_VERSION runs of `tasks`, now that code defining them is here."""
    by_id = {t.id: t for t in tasks}
    for row in tx.all("pending_version_runs", env_id=env_id, task_ids=list(by_id)):
        resolved = _resolved(row, by_id[row["task_id"]], now)
        tx.run("resolve_pending_run", **resolved)
        if row["concurrency_key"] is not None:
            tx.run("mark_queue_keyed", env_id=env_id, name=resolved["queue"])


def _resolved(row: Row, task: TaskDefinition, now: float) -> dict[str, Any]:
    """The columns of a PENDING_VERSION run once `task` defines it: its trigger options (when it
    was triggered before any version defined the task) over the task's settings."""
    if row["trigger_options"] is None:  # it had its settings; its task only went missing a while
        status = RunStatus.DELAYED if row["available_at"] > now else RunStatus.QUEUED
        return {
            "id": row["id"],
            "status": status.value,
            "queue": row["queue"],
            "max_attempts": row["max_attempts"],
            "retry": row["retry"],
            "max_duration": row["max_duration"],
            "machine": row["machine"],
            "hooks": row["hooks"],
            "ttl": row["ttl"],
            "expires_at": row["expires_at"],
            "now": now,
        }
    options = TriggerOptions.model_validate_json(row["trigger_options"])
    delayed = row["available_at"] > now
    ttl = parse_duration(options.ttl, name="ttl") if options.ttl is not None else task.ttl
    return {
        "id": row["id"],
        "status": (RunStatus.DELAYED if delayed else RunStatus.QUEUED).value,
        "queue": options.queue.name if options.queue else task.queue.name,
        "max_attempts": options.max_attempts or task.retry.max_attempts,
        "retry": task.retry.model_dump_json(),
        "max_duration": options.max_duration
        if options.max_duration is not None
        else task.max_duration,
        "machine": options.machine or task.machine,
        "hooks": ",".join(task.hooks),
        "ttl": ttl,
        # the ttl counts from now: the run could not start while no version defined its task
        "expires_at": None if delayed or ttl is None else now + ttl,
        "now": now,
    }
