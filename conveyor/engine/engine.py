"""The Engine: environments and keys, task registry, triggering, and the run state machine.

Every public method is one transaction in the store. Run state changes only here:

    trigger ─▶ DELAYED ─(tick)─▶ QUEUED ─(lease)─▶ EXECUTING ─(complete)─▶ COMPLETED
                  │                 │  ▲                 │               FAILED / TIMED_OUT /
                  │                 │  └── retry delay ──┘               CRASHED / SYSTEM_FAILURE
                  └──── cancel ─────┴─▶ CANCELED   QUEUED past ttl ─(tick)─▶ EXPIRED

Every transaction that reads runs in order to change them first locks their environment
(`tx.lock(env_id)`): on SQLite, which has one writer, that costs nothing; on PostgreSQL it makes
several servers' changes to one environment take turns, so checks such as "the run is still
QUEUED" or "this was the last child" hold until the change commits. Leasing is the exception:
it locks the queues it starts runs from (skipping queues another lease holds) and the runs it
picks (skipping runs another transaction holds), so workers lease in parallel and every queue
limit is still checked by one lease at a time.

A run that ends owing a lifecycle hook (on_success, on_failure, on_cancel) keeps it in its `hook`
column until a worker reports it ran, so a hook fires even when the run ended without a worker
(expired, canceled while queued, crashed, timed out by a kill).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

from conveyor import retries
from conveyor.durations import parse_duration, resolve_when
from conveyor.engine.accounts import Accounts, hash_secret
from conveyor.engine.deployments import Deployments
from conveyor.engine.durable import DurableExecution
from conveyor.engine.trace import MAX_TRACE_ROWS, build_trace
from conveyor.engine.views import attempt_view, json_text, log_view, run_view, wait_view
from conveyor.engine.workers import WorkerProtocol, take_back_span
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError
from conveyor.ids import new_id
from conveyor.models import (
    FAILURE_STATUSES,
    MACHINES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_HINT,
    Attempt,
    LogLine,
    ModuleFailure,
    QueueInfo,
    QueueSpec,
    RetryPolicy,
    Run,
    RunStatus,
    TaskDefinition,
    Trace,
    TriggerOptions,
)
from conveyor.protocol import (
    AttemptOutcome,
)
from conveyor.serialization import json_problem
from conveyor.store import Row, Store, Tx

MAX_BATCH = 1000
DEFAULT_IDEMPOTENCY_TTL = 30 * 86400.0
AUTH_CACHE_SECONDS = 5.0

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
class Environment:
    id: str
    project: str
    slug: str
    kind: str
    concurrency_limit: int | None


@dataclass(frozen=True, slots=True)
class RunPage:
    """A page of runs, newest first, and the cursors (run ids) of the pages either side."""

    runs: list[Run]
    older: str | None
    newer: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    runs: list[Run]


hash_key = hash_secret  # keys are stored as their sha256 (conveyor.engine.accounts)


class Engine(WorkerProtocol, DurableExecution, Deployments):
    """The run state machine over a store. Thread-safe; each method is one transaction."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, worker_timeout: float = 30.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.worker_timeout = worker_timeout
        # a worker stops its own attempts once no heartbeat was acknowledged for worker_timeout;
        # the engine takes its runs back only after this longer span, the margin covering the
        # worker's stopping and clocks of servers that disagree a little (see protocol.py)
        self.take_back_after = take_back_span(worker_timeout)
        # since when this engine has had the database without a failure: a worker whose
        # heartbeats could not be recorded (the database away) is judged lost only once
        # take_back_after has passed after that
        self._database_since = clock()
        self._failures_seen = store.failures
        self._listeners: list[Callable[[str, str, str | None], None]] = []
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._auth_cache: dict[str, tuple[float, Environment | None]] = {}
        self._definitions: dict[str, TaskDefinition] = {}
        self._versions: dict[
            tuple[str, str], dict[str, TaskDefinition]
        ] = {}  # (env, version): its tasks
        self._validators_lock = threading.Lock()
        self._origin = secrets.token_hex(6)  # tells this engine's published events from others'
        # organizations, projects, personal access tokens and environment keys
        self.accounts = Accounts(store, clock=clock, forget_keys=self._auth_cache.clear)

    # -- events ---------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[str, str, str | None], None]) -> None:
        """Call `listener(event, env_id, run_id)` on "available" (runs may start) and "stop"
        (a worker must stop a run), whichever server's engine made the change: events of
        other processes on the same database arrive through the store (LISTEN/NOTIFY), and
        after a lost database connection an "available" for every environment ("*")."""
        if not self._listeners:
            self.store.listen(self._on_published)
        self._listeners.append(listener)

    def _emit(self, event: str, env_id: str, run_id: str | None = None) -> None:
        self._dispatch(event, env_id, run_id)
        self.store.publish(f"{self._origin} {event} {env_id} {run_id or ''}")

    def _dispatch(self, event: str, env_id: str, run_id: str | None) -> None:
        for listener in self._listeners:
            listener(event, env_id, run_id)

    def _on_published(self, message: str) -> None:
        if not message:  # the connection was lost meanwhile: anything may have changed
            self._dispatch("available", "*", None)
            return
        origin, event, env_id, run_id = [*message.split(" "), "", "", ""][:4]
        if origin != self._origin:  # our own changes were dispatched when they were made
            self._dispatch(event, env_id, run_id or None)

    # -- environments and keys ------------------------------------------------------------

    def ensure_environment(
        self, project: str, slug: str, kind: str, concurrency_limit: int | None = None
    ) -> Environment:
        now = self.clock()
        with self.store.transaction() as tx:
            tx.lock(f"environment:{project}:{slug}")
            row = tx.one("find_environment", project=project, slug=slug)
            if row is None:
                env_id = new_id("env")
                tx.run(
                    "insert_environment",
                    id=env_id,
                    project=project,
                    slug=slug,
                    kind=kind,
                    concurrency_limit=concurrency_limit,
                    now=now,
                )
                Accounts.adopt_project(tx, project, now)  # every environment belongs to a project
                row = tx.one("get_environment", id=env_id)
            elif concurrency_limit is not None and row["concurrency_limit"] != concurrency_limit:
                tx.run("set_environment_limit", id=row["id"], concurrency_limit=concurrency_limit)
                row = tx.one("get_environment", id=row["id"])
        assert row is not None
        return _env(row)

    def add_api_key(self, env_id: str, secret: str) -> None:
        with self.store.transaction() as tx:
            tx.run(
                "insert_api_key",
                key_hash=hash_key(secret),
                env_id=env_id,
                prefix=secret[:12],
                now=self.clock(),
            )

    def revoke_api_key(self, secret: str) -> bool:
        """Revoke a key: it stops authenticating here at once, and on other servers of the same
        database within AUTH_CACHE_SECONDS. False when no live key matched."""
        digest = hash_key(secret)
        with self.store.transaction() as tx:
            revoked = tx.run("revoke_api_key", key_hash=digest, now=self.clock()) > 0
        self._auth_cache.pop(digest, None)
        return revoked

    def authenticate(self, secret: str) -> Environment | None:
        """The environment of a live key. Answers from memory for a few seconds after a lookup
        (every request authenticates), so a revoked key stops working within AUTH_CACHE_SECONDS."""
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.store.read() as tx:
            row = tx.one("environment_for_key", key_hash=digest)
        env = _env(row) if row else None
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (now + AUTH_CACHE_SECONDS, env)
        return env

    def cached_environment(self, secret: str) -> tuple[bool, Environment | None]:
        """(known, environment) from the authentication cache alone, without a query."""
        cached = self._auth_cache.get(hash_key(secret))
        if cached is not None and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    def get_environment(self, env_id: str) -> Environment:
        with self.store.read() as tx:
            row = tx.one("get_environment", id=env_id)
        if row is None:
            raise NotFound(f"environment {env_id} not found")
        return _env(row)

    # -- tasks ----------------------------------------------------------------------------

    def register_worker(
        self,
        env_id: str,
        worker_id: str,
        name: str,
        tasks: list[TaskDefinition] | None = None,
        *,
        deployed: bool = False,
    ) -> None:
        """A worker (re)starts. Runs it held in an earlier life cannot still be running: they
        fail as crashed and are retried per their policy. A `deployed` worker runs the deployed
        versions of the environment; any other brings its own code (`tasks`), which an
        environment with a deployed version refuses."""
        now = self.clock()
        with self.store.transaction() as tx:
            tx.lock(env_id)
            existing = tx.one("get_worker", id=worker_id)
            if existing is not None and existing["env_id"] != env_id:
                raise Conflict(
                    f"worker id {worker_id!r} belongs to another environment; use another id"
                )
            if tasks is not None:
                self._refuse_local_code(tx, env_id)
            tx.run(
                "upsert_worker",
                id=worker_id,
                env_id=env_id,
                name=name,
                now=now,
                deployed=1 if deployed else 0,
            )
            for row in tx.all("runs_of_worker", worker_id=worker_id):
                self._take_back(
                    tx,
                    row,
                    "crashed",
                    "WorkerRestarted",
                    "The worker running this attempt stopped before it finished.",
                    now,
                )
            if tasks is not None:
                self._put_tasks(tx, env_id, tasks, now)
        self._emit("available", env_id)

    def set_tasks(self, env_id: str, tasks: list[TaskDefinition]) -> None:
        """Replace the environment's task definitions (a reload or a deploy)."""
        with self.store.transaction() as tx:
            tx.lock(env_id)
            self._refuse_local_code(tx, env_id)
            self._put_tasks(tx, env_id, tasks, self.clock())
        self._emit("available", env_id)

    @staticmethod
    def _refuse_local_code(tx: Tx, env_id: str) -> None:
        env = tx.one("get_environment", id=env_id)
        if env is not None and env["current_version"] is not None:
            raise Conflict(
                f"the {env['slug']} environment runs deployed code (version {env['current_version']}): "
                f"start workers for it with `conveyor worker --env {env['kind']}`, which fetch the "
                "deployed versions, rather than with the code of a project folder"
            )

    def _put_tasks(self, tx: Tx, env_id: str, tasks: list[TaskDefinition], now: float) -> None:
        declared: dict[str, int | None] = {}
        for task in tasks:
            tx.run(
                "upsert_task",
                env_id=env_id,
                task_id=task.id,
                queue=task.queue.name,
                definition=task.model_dump_json(),
                now=now,
            )
            # a queue shared by tasks takes the limit any of them declares
            limit = task.queue.concurrency_limit
            declared[task.queue.name] = declared.get(task.queue.name) if limit is None else limit
        for name, limit in declared.items():
            tx.run("set_queue_limit", env_id=env_id, name=name, concurrency_limit=limit, now=now)
        if tasks:
            tx.run("delete_tasks_except", env_id=env_id, keep=[t.id for t in tasks])
            self._resolve_pending(tx, env_id, tasks, now)
        else:
            tx.run("delete_all_tasks", env_id=env_id)

    def set_load_failures(self, env_id: str, failures: list[ModuleFailure]) -> None:
        """Record the task modules that failed to import at the latest load of the environment's
        worker code (none: all imported)."""
        value = json.dumps([f.model_dump(mode="json") for f in failures]) if failures else None
        with self.store.transaction() as tx:
            tx.run("set_load_failures", id=env_id, failures=value)

    def load_failures(self, env_id: str) -> list[ModuleFailure]:
        """The task modules that failed to import at the latest load of the worker code."""
        with self.store.read() as tx:
            row = tx.one("get_environment", id=env_id)
        return _load_failures(row)

    def list_tasks(self, env_id: str) -> list[TaskDefinition]:
        with self.store.read() as tx:
            rows = tx.all("list_tasks", env_id=env_id)
        return [TaskDefinition.model_validate_json(r["definition"]) for r in rows]

    def get_task(self, env_id: str, task_id: str) -> TaskDefinition:
        with self.store.read() as tx:
            row = tx.one("get_task", env_id=env_id, task_id=task_id)
            env = tx.one("get_environment", id=env_id) if row is None else None
        if row is None:
            raise NotFound(
                f"task {task_id!r} is not defined in this environment; {_why_missing(env)}"
            )
        return TaskDefinition.model_validate_json(row["definition"])

    # -- triggering -----------------------------------------------------------------------

    def trigger(
        self,
        env_id: str,
        task_id: str,
        payload: Any,
        options: TriggerOptions | None = None,
        *,
        parent_id: str | None = None,
    ) -> Run:
        """Create a run (or return the run holding the same idempotency key)."""
        return self.batch_trigger(
            env_id,
            [(task_id, payload, options or TriggerOptions())],
            parent_id=parent_id,
            record_batch=False,
        ).runs[0]

    def batch_trigger(
        self,
        env_id: str,
        items: list[tuple[str, Any, TriggerOptions]],
        *,
        parent_id: str | None = None,
        record_batch: bool = True,
        replayed_from: str | None = None,
    ) -> BatchResult:
        """Create up to 1,000 runs in one transaction: all of them, or none if any is invalid."""
        now = self.clock()
        batch_id = new_id("batch") if record_batch else None
        with self.store.transaction() as tx:
            if parent_id or any(options.idempotency_key for _, _, options in items):
                # a plain trigger only inserts; a keyed one must see the key's holder, a child its parent
                tx.lock(env_id)
            parent = tx.one("get_run_by_id", id=parent_id) if parent_id else None
            env = tx.one("get_environment", id=env_id)
            runs, queued = self._create_runs(
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
            self._emit("available", env_id)
        return BatchResult(batch_id or "", runs)

    def _create_runs(
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
    ) -> tuple[list[Run], bool]:
        """Insert the runs of a trigger or batch inside `tx`. Returns the runs in input order (an
        existing run where an idempotency key matched) and whether any is queued now.

        With `version` the runs are locked to that deployed version from the start and take its
        task definitions (children a run waits for). In a `deployed` environment a task that no
        version defines yet is no error: its run waits in PENDING_VERSION for a deploy."""
        if not items:
            raise InvalidRequest("a batch needs at least one item")
        if len(items) > MAX_BATCH:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH} items, got {len(items)}")
        definitions: dict[str, TaskDefinition] = {}
        runs: list[Run] = []
        rows: list[dict[str, Any]] = []
        fresh_keys: dict[tuple[str, str], Run] = {}
        locked = self._version_tasks(tx, env_id, version) if version is not None else None
        for index, (task_id, payload, options) in enumerate(items):
            where = f"items[{index}]: " if batch_id else ""
            task = definitions.get(task_id)
            pending = False
            if task is None:
                if locked is not None:
                    found = locked.get(task_id)
                    if found is None:
                        raise NotFound(
                            f"{where}task {task_id!r} is not defined in version {version}, which this "
                            "run is locked to; deploy it, then trigger it from a run that starts on the "
                            "new version"
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
                            f"{_why_missing(env_row)}"
                        )
            if not pending:
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
            row = self._new_run_row(env_id, task, payload, options, now, parent, batch_id, where)
            row["replayed_from"] = replayed_from
            row["version"] = version
            if pending:  # the task's settings come with the version that defines it
                row.update(
                    status=RunStatus.PENDING_VERSION,
                    expires_at=None,
                    trigger_options=options.model_dump_json(exclude_defaults=True),
                )
            if options.queue is not None:
                if options.queue.concurrency_limit is not None:
                    tx.run(
                        "set_queue_limit",
                        env_id=env_id,
                        name=options.queue.name,
                        concurrency_limit=options.queue.concurrency_limit,
                        now=now,
                    )
                else:
                    tx.run(
                        "ensure_queue",
                        env_id=env_id,
                        name=options.queue.name,
                        concurrency_limit=None,
                        now=now,
                    )
            if options.concurrency_key is not None:
                tx.run("mark_queue_keyed", env_id=env_id, name=row["queue"])
            rows.append(row)
            runs.append(run_view(row))
            if options.idempotency_key:
                fresh_keys[(task_id, options.idempotency_key)] = runs[-1]
        tx.run_many("insert_run", rows)
        if batch_id is not None:
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

    def _new_run_row(
        self,
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

    def replay(
        self, env_id: str, run_id: str, payload: Any = None, *, use_payload: bool = False
    ) -> Run:
        """A new run of the same task with the same payload (or `payload`) and options."""
        with self.store.read() as tx:
            old = tx.one("get_run", env_id=env_id, id=run_id)
        if old is None:
            raise NotFound(f"run {run_id} not found")
        options = TriggerOptions(
            tags=json.loads(old["tags"]),
            metadata=json.loads(old["metadata"]),
            queue={"name": old["queue"]},
            concurrency_key=old["concurrency_key"],
            priority=old["priority"],
            max_attempts=old["max_attempts"],
            max_duration=old["max_duration"],
            machine=old["machine"],
        )
        new_payload = payload if use_payload else json.loads(old["payload"])
        return self.batch_trigger(
            env_id,
            [(old["task_id"], new_payload, options)],
            parent_id=old["parent_id"],
            record_batch=False,
            replayed_from=run_id,
        ).runs[0]

    # -- reading --------------------------------------------------------------------------

    def get_run(self, env_id: str, run_id: str, *, with_attempts: bool = False) -> Run:
        with self.store.read() as tx:
            row = tx.one("get_run", env_id=env_id, id=run_id)
            if row is None:
                raise NotFound(f"run {run_id} not found")
            attempts = tx.all("list_attempts", run_id=run_id) if with_attempts else None
            waits = (
                tx.all("waits_of_run", run_id=run_id)
                if with_attempts and row["status"] == "WAITING"
                else None
            )
        run = run_view(row)
        if attempts is not None:
            run.attempt_list = [attempt_view(a) for a in attempts]
        if waits is not None:
            run.waiting_on = [wait_view(w) for w in waits]
        return run

    def list_runs(
        self,
        env_id: str,
        *,
        statuses: Iterable[str] = (),
        task_id: str | None = None,
        tag: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        roots: bool = False,
    ) -> tuple[list[Run], str | None]:
        """A page of runs, newest first: those older than `cursor` (a run id), and the cursor of
        the next page (None on the last)."""
        page = self.runs_page(
            env_id,
            statuses=statuses,
            task_id=task_id,
            tag=tag,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            older_than=cursor,
            roots=roots,
        )
        return page.runs, page.older

    def runs_page(
        self,
        env_id: str,
        *,
        statuses: Iterable[str] = (),
        task_id: str | None = None,
        tag: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        limit: int = 50,
        older_than: str | None = None,
        newer_than: str | None = None,
        roots: bool = False,
    ) -> RunPage:
        """A page of runs, newest first, going either way from a run id (keyset pagination: as
        fast on the thousandth page as on the first). `older` and `newer` are the cursors of the
        neighbouring pages, None where there is none. With `roots`, only the runs no other run
        triggered. Each run says how many runs it triggered (`child_count`)."""
        statuses = list(statuses)
        for status in statuses:
            if status not in RunStatus.__members__:
                raise InvalidRequest(f"unknown status {status!r}; one of {', '.join(RunStatus)}")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        for cursor in (older_than, newer_than):
            if cursor is not None and not cursor.startswith("run_"):
                raise InvalidRequest("cursor must be the next_cursor of a previous page (a run id)")
        tag_pattern = None
        if tag is not None:
            escaped = json_text(tag)
            tag_pattern = "%" + escaped + "%"
        filters = {
            "env_id": env_id,
            "any_status": 1 if statuses else 0,
            "statuses": statuses or [""],
            "task_id": task_id,
            "tag": tag_pattern,
            "created_from": created_from,
            "created_to": created_to,
            "roots": 1 if roots else 0,
            "limit": limit + 1,
        }
        with self.store.read() as tx:
            if newer_than is not None:
                rows = tx.all("list_runs_newer", cursor=newer_than, **filters)
                if len(rows) <= limit:  # this reaches the newest run: that is the first page
                    return self.runs_page(
                        env_id,
                        statuses=statuses,
                        task_id=task_id,
                        tag=tag,
                        created_from=created_from,
                        created_to=created_to,
                        limit=limit,
                        roots=roots,
                    )
                rows = rows[:limit][::-1]
                newer: str | None = rows[0]["id"]
                older = rows[-1]["id"]
            else:
                if older_than is not None:
                    rows = tx.all("list_runs_older", cursor=older_than, **filters)
                else:
                    rows = tx.all("list_runs", **filters)
                older = rows[limit - 1]["id"] if len(rows) > limit else None
                rows = rows[:limit]
                newer = rows[0]["id"] if older_than is not None and rows else None
            counts = (
                {
                    c["parent_id"]: c["children"]
                    for c in tx.all("count_children", ids=[r["id"] for r in rows])
                }
                if rows
                else {}
            )
        runs = [run_view(r) for r in rows]
        for run in runs:
            run.child_count = counts.get(run.id, 0)
        if (
            tag is not None
        ):  # LIKE over the JSON text can over-match (a tag containing the tag); be exact
            runs = [r for r in runs if tag in r.tags]
        return RunPage(runs, older, newer)

    def list_attempts(self, env_id: str, run_id: str) -> list[Attempt]:
        self.get_run(env_id, run_id)
        with self.store.read() as tx:
            return [attempt_view(a) for a in tx.all("list_attempts", run_id=run_id)]

    def get_trace(self, env_id: str, run_id: str) -> Trace:
        """The run's spans (attempts, steps, triggers with their child runs, waits, tokens) as a
        tree; see conveyor/engine/trace.py."""
        with self.store.read() as tx:
            row = tx.one("get_run", env_id=env_id, id=run_id)
            if row is None:
                raise NotFound(f"run {run_id} not found")
            attempts = tx.all("list_attempts", run_id=run_id)
            journal = tx.all("trace_journal", run_id=run_id, limit=MAX_TRACE_ROWS + 1)
            children = tx.all("child_runs", parent_id=run_id, limit=MAX_TRACE_ROWS + 1)
        truncated = len(journal) > MAX_TRACE_ROWS or len(children) > MAX_TRACE_ROWS
        return build_trace(
            row,
            attempts,
            journal[:MAX_TRACE_ROWS],
            children[:MAX_TRACE_ROWS],
            now=self.clock(),
            truncated=truncated,
        )

    def list_logs(self, env_id: str, run_id: str, limit: int = 5000) -> list[LogLine]:
        self.get_run(env_id, run_id)
        with self.store.read() as tx:
            return [log_view(r) for r in tx.all("list_logs", run_id=run_id, limit=limit)]

    # -- cancel ---------------------------------------------------------------------------

    def cancel(self, env_id: str, run_id: str) -> Run:
        """Cancel a run that has not ended, and its unfinished children. An executing attempt
        is stopped by its worker."""
        now = self.clock()
        stopped: list[str] = []
        with self.store.transaction() as tx:
            tx.lock(env_id)
            row = tx.one("lock_run", env_id=env_id, id=run_id)
            if row is None:
                raise NotFound(f"run {run_id} not found")
            status = RunStatus(row["status"])
            if status.is_final:
                raise Conflict(
                    f"run {run_id} already ended {status.value}; only unfinished runs can be canceled"
                )
            envs = self._cancel_row(tx, row, now, stopped)
            row = tx.one("get_run", env_id=env_id, id=run_id)
        assert row is not None
        for stopped_id in stopped:
            self._emit("stop", env_id, stopped_id)
        for env in envs:
            self._emit("available", env)
        return run_view(row)

    def _cancel_row(
        self, tx: Tx, row: Row, now: float, stopped: list[str], depth: int = 0
    ) -> set[str]:
        error = {
            "name": "Canceled",
            "code": "canceled",
            "message": "The run was canceled." if depth == 0 else "Its parent run was canceled.",
        }
        if row["status"] == RunStatus.EXECUTING:
            tx.run(
                "insert_attempt",
                run_id=row["id"],
                number=row["attempt_count"],
                status="CANCELED",
                worker_id=row["worker_id"],
                started_at=row["attempt_started_at"] or now,
                now=now,
                error=json_text(error),
            )
            tx.run(
                "revoke_fence", id=row["id"]
            )  # the attempt's reports and durable calls are refused now
            stopped.append(row["id"])
        envs = self._finish(tx, row, RunStatus.CANCELED, None, error, now)
        if row["status"] == RunStatus.EXECUTING:
            tx.run(
                "mark_stopping", id=row["id"]
            )  # its slot stays taken until the worker has stopped the body
        for child in tx.all("unfinished_children", parent_id=row["id"]):
            envs |= self._cancel_row(tx, child, now, stopped, depth + 1)
        return envs

    # -- queues ---------------------------------------------------------------------------

    def list_queues(self, env_id: str) -> list[QueueInfo]:
        with self.store.read() as tx:
            rows = tx.all("list_queues", env_id=env_id)
        return [
            QueueInfo(
                name=r["name"],
                concurrency_limit=r["concurrency_limit"],
                code_limit=r["code_limit"],
                override_limit=r["override_limit"],
                paused=bool(r["paused"]),
                running=r["running"],
                queued=r["queued"],
            )
            for r in rows
        ]

    def get_queue(self, env_id: str, name: str) -> QueueInfo:
        for queue in self.list_queues(env_id):
            if queue.name == name:
                return queue
        raise NotFound(f"queue {name!r} not found")

    def set_queue_paused(self, env_id: str, name: str, paused: bool) -> QueueInfo:
        with self.store.transaction() as tx:
            if not tx.run("set_queue_paused", env_id=env_id, name=name, paused=1 if paused else 0):
                raise NotFound(f"queue {name!r} not found")
        if not paused:
            self._emit("available", env_id)
        return self.get_queue(env_id, name)

    def set_queue_limit(self, env_id: str, name: str, limit: int | None) -> QueueInfo:
        """Override a queue's limit (None clears the override, so the code's limit applies again)."""
        with self.store.transaction() as tx:
            if not tx.run("set_queue_override", env_id=env_id, name=name, override_limit=limit):
                raise NotFound(f"queue {name!r} not found")
        self._emit("available", env_id)
        return self.get_queue(env_id, name)

    def set_environment_limit(self, env_id: str, limit: int | None) -> None:
        """The cap on executing runs across the environment (None: no cap)."""
        with self.store.transaction() as tx:
            tx.run("set_environment_limit", id=env_id, concurrency_limit=limit)
        self._emit("available", env_id)

    def _settle(self, tx: Tx, row: Row, outcome: AttemptOutcome, now: float) -> set[str]:
        """Apply one attempt's outcome to its run. Returns the environments where workers
        should look again (a run went back to its queue, a hook is owed, a parent resumed)."""
        final_status, retriable = _OUTCOMES[outcome.kind]
        attempt = row["attempt_count"]
        attempt_status = {"completed": "COMPLETED", "interrupted": "INTERRUPTED"}.get(
            outcome.kind, final_status.value
        )
        error_json = json_text(outcome.error) if outcome.error is not None else None
        tx.run(
            "insert_attempt",
            run_id=row["id"],
            number=attempt,
            status=attempt_status,
            worker_id=row["worker_id"],
            started_at=row["attempt_started_at"] or now,
            now=now,
            error=error_json,
        )
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
            tx.run("requeue_run", id=row["id"], error=error_json, available_at=now + delay, now=now)
            return {row["env_id"]}
        output = outcome.output_json if outcome.kind == "completed" else None
        return self._finish(tx, row, final_status, output, outcome.error, now)

    def _finish(
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
        hook = None
        if status == RunStatus.COMPLETED and "on_success" in hooks:
            hook = "on_success"
        elif status in FAILURE_STATUSES and "on_failure" in hooks:
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
        envs = self._run_ended(tx, row["id"], now)
        if hook is not None:
            envs.add(row["env_id"])
        return envs

    # -- time-driven changes --------------------------------------------------------------

    def tick(self) -> None:
        """Advance time: queue delayed runs that are due, complete durations that have passed and
        time out tokens, expire runs past their ttl, and take back runs of workers that stopped
        heartbeating. Safe to call from several servers at once.

        Workers are judged lost only once this engine has had the database for take_back_after
        without a failure: while it was away, heartbeats could not be recorded (the workers
        stopped their attempts themselves, and report the outcomes they reached once it is back)."""
        now = self.clock()
        envs: set[str] = set()
        if self.store.failures != self._failures_seen:  # an outage since the last tick
            self._failures_seen = self.store.failures
            self._database_since = now
        with self.store.read() as tx:
            due = sorted(r["env_id"] for r in tx.all("environments_with_due_work", now=now))
            judge = now - self._database_since >= self.take_back_after
            lost = (
                [r["id"] for r in tx.all("lost_workers", before=now - self.take_back_after)]
                if judge
                else []
            )
        for env_id in due:  # one transaction per environment, under its lock
            with self.store.transaction() as tx:
                tx.lock(env_id)
                envs |= self._tick_environment(tx, env_id, now)
        for worker_id in lost:
            self._reclaim(
                worker_id,
                f"The worker running this attempt stopped heartbeating for {self.take_back_after:g}s.",
            )
        for env_id in envs:
            self._emit("available", env_id)

    def _tick_environment(self, tx: Tx, env_id: str, now: float) -> set[str]:
        envs = {env_id} if tx.all("promote_delayed", env_id=env_id, now=now) else set()
        envs |= self._due_waitpoints(tx, env_id, now)
        for row in tx.all("expired_runs", env_id=env_id, now=now):
            envs |= self._finish(
                tx,
                row,
                RunStatus.EXPIRED,
                None,
                {
                    "name": "Expired",
                    "code": "expired",
                    "message": f"The run was not started within its ttl of {row['ttl']:g}s.",
                },
                now,
            )
        for row in tx.all("orphaned_runs", env_id=env_id):
            envs |= self._take_back(
                tx,
                row,
                "crashed",
                "WorkerLost",
                "The worker holding this attempt had stopped.",
                now,
            )
        return envs


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


def _load_failures(env: Row | None) -> list[ModuleFailure]:
    raw = env["load_failures"] if env is not None else None
    return [ModuleFailure.model_validate(f) for f in json.loads(raw)] if raw else []


def _why_missing(env: Row | None) -> str:
    """What a 404 for an unknown task adds: the modules that failed to import, or a hint."""
    failures = _load_failures(env)
    if failures:
        return "; ".join(f.describe() for f in failures)
    return "check its id, or that the worker has loaded it"


def _env(row: Row) -> Environment:
    return Environment(
        row["id"], row["project"], row["slug"], row["kind"], row["concurrency_limit"]
    )
