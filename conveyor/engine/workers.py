"""The worker protocol: registering, leases, heartbeats, outcomes, hooks, logs, and taking back
what a worker that stopped or vanished held. The routes of conveyor/server/api/workers.py (but
durable calls and suspend: durable.py) and the in-process link of `conveyor dev` are this part.

A worker (in-process in `conveyor dev`, over HTTP for `conveyor worker`) leases runs, runs
their attempts, heartbeats the ids it runs, and reports outcomes; the run state
machine (transitions.py: `settle`, `finish`) decides what each outcome means.

Leasing is the one run-changing transaction that does not lock its environment (see transitions.py):
it locks the queues it starts runs from, skipping those another lease holds, and the runs it
picks, so workers lease in parallel and each queue's limit is counted by one lease at a time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from conveyor.engine.admission import Admission, QueueState
from conveyor.engine.envvars import EnvVars
from conveyor.engine.events import Events
from conveyor.engine.scheduling import choose_runs
from conveyor.engine.transitions import Transitions, holds
from conveyor.engine.views import json_text
from conveyor.errors import Conflict, NotFound
from conveyor.models import ModuleFailure, RunStatus, TaskDefinition
from conveyor.protocol import (
    AttemptOutcome,
    AttemptSpec,
    Heartbeat,
    HeartbeatReply,
    HookJob,
    JournalEntry,
    LeaseReply,
    LogEntry,
    OutcomeKind,
)
from conveyor.serialization import as_text, json_problem
from conveyor.store import Row, Store

HOOK_LEASE_SECONDS = 60.0
SKIPPED_QUEUE_RETRY = 0.02  # seconds before a lease looks again at queues another lease held
TAKE_BACK_MARGIN = 5.0  # seconds, at least, between a silent worker's self-stop and the take-back


def take_back_span(worker_timeout: float) -> float:
    """Seconds without a heartbeat after which the engine takes a worker's runs back: the worker
    timeout (when the worker has stopped its attempts itself) plus a margin of half of it, and at
    least TAKE_BACK_MARGIN seconds."""
    return worker_timeout + max(TAKE_BACK_MARGIN, worker_timeout / 2)


def _count(row: Row | None) -> int:
    return int(row["n"]) if row else 0


class Workers:
    """The worker protocol (see the module docstring). `timeout` is how long a worker goes on
    without an acknowledged heartbeat before it stops its own attempts (protocol.py)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        envvars: EnvVars,
        timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._envvars = envvars
        self.timeout = timeout
        # a worker stops its own attempts once no heartbeat was acknowledged for `timeout`;
        # the engine takes its runs back only after this longer span, the margin covering the
        # worker's stopping and clocks of servers that disagree a little (see protocol.py)
        self.take_back_after = take_back_span(timeout)

    def register(
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
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            existing = tx.one("get_worker", id=worker_id)
            if existing is not None and existing["env_id"] != env_id:
                raise Conflict(
                    f"worker id {worker_id!r} belongs to another environment; use another id"
                )
            if tasks is not None:
                self._transitions.refuse_local_code(tx, env_id)
            tx.run(
                "upsert_worker",
                id=worker_id,
                env_id=env_id,
                name=name,
                now=now,
                deployed=1 if deployed else 0,
            )
            for row in tx.all("runs_of_worker", worker_id=worker_id):
                self._transitions.take_back(
                    tx,
                    row,
                    "crashed",
                    "WorkerRestarted",
                    "The worker running this attempt stopped before it finished.",
                    now,
                )
            if tasks is not None:
                self._transitions.put_tasks(tx, env_id, tasks, now)
        self._events.emit("available", env_id)

    def set_tasks(self, env_id: str, tasks: list[TaskDefinition]) -> None:
        """Replace the environment's task definitions (a reload or a deploy)."""
        with self._store.transaction() as tx:
            tx.lock(env_id)
            self._transitions.refuse_local_code(tx, env_id)
            self._transitions.put_tasks(tx, env_id, tasks, self._clock())
        self._events.emit("available", env_id)

    def set_load_failures(self, env_id: str, failures: list[ModuleFailure]) -> None:
        """Record the task modules that failed to import at the latest load of the environment's
        worker code (none: all imported)."""
        value = json.dumps([f.model_dump(mode="json") for f in failures]) if failures else None
        with self._store.transaction() as tx:
            tx.run("set_load_failures", id=env_id, failures=value)

    def lease(
        self, env_id: str, worker_id: str, capacity: int, hook_capacity: int = 50
    ) -> LeaseReply:
        """Start up to `capacity` queued runs on a worker, within every concurrency limit, and
        hand it lifecycle hooks still owed. One transaction: limits cannot be overshot."""
        now = self._clock()
        began = time.perf_counter()
        reply = LeaseReply()
        waited: list[tuple[str, float]] = []  # (queue, seconds) of each attempt started
        # the variables its attempts run with, decrypted before anything is leased: a server
        # without the key they were set with refuses the lease (SecretsKeyError), handing out
        # no run it could not give them to
        values = self._envvars.resolved(env_id)
        with self._store.transaction() as tx:
            env = tx.one("get_environment", id=env_id)
            if env is None:
                raise NotFound(f"environment {env_id} not found")
            worker = tx.one("get_worker", id=worker_id)
            if worker is None or worker["stopped_at"] is not None:
                # a worker that stopped or was declared lost (a dead worker's long poll, say)
                # must not take runs nobody would run; its next heartbeat revives it
                return reply
            version = env["current_version"]
            reply.current_version = version
            if version is not None and not worker["deployed"]:
                return (
                    reply  # its own code is not what runs here (since a deploy after it registered)
                )
            if version is None and worker["deployed"]:
                return reply  # nothing is deployed: it has no code to run anything with
            if capacity > 0:
                if (
                    env["concurrency_limit"] is not None
                ):  # the cap spans queues: one lease at a time
                    env = tx.one("lock_environment", id=env_id)
                    assert env is not None
                active = [QueueState.of(q) for q in tx.all("active_queues", env_id=env_id)]
                # another server's lease holds some queues: look again shortly unless this one
                # is full
                skipped = self._store.concurrent_writers and len(active) < _count(
                    tx.one("count_active_queues", env_id=env_id)
                )
                queues = {q.name: q for q in active}
                executing: dict[tuple[str, str | None], int] = {}
                total = 0
                for row in tx.all("executing_counts", env_id=env_id):
                    key = (row["queue"], row["concurrency_key"])
                    executing[key] = executing.get(key, 0) + row["n"]
                    total += row["n"]
                # the clock again, now that the slots are counted: a run whose slot counted as
                # free ended before this, so no start is stamped before the end it waited for
                # (a lease may have waited for the locks of another server's lease meanwhile)
                now = self._clock()
                env_limit = env["concurrency_limit"]
                env_free = None if env_limit is None else env_limit - total
                # read no more turns and runs than the lease may start (at least one, so a queue
                # its rate limit holds back still says when it has room)
                budget = capacity if env_free is None else max(1, min(capacity, env_free))
                admission = Admission(tx, env_id, now, executing, budget)
                candidates = [admission.candidates(q) for q in active]
                resuming = admission.resuming
                chosen = choose_runs(
                    capacity=capacity,
                    env_free=env_free,
                    queue_limits={q.name: q.limit for q in active},
                    executing=executing,
                    candidates=[c for c in candidates if c],
                    rate_room=admission.rate_room,
                )
                admission.record(chosen, queues)
                if chosen:
                    order = {c.id: i for i, c in enumerate(chosen)}
                    counted = tx.one("next_lease_seq", id=worker_id)
                    assert counted is not None
                    reply.lease_seq = counted["lease_seq"]
                    leased = tx.all(
                        "lease_runs",
                        ids=[c.id for c in chosen],
                        worker_id=worker_id,
                        now=now,
                        version=version,
                        lease_seq=reply.lease_seq,
                    )
                    leased.sort(key=lambda r: order[r["id"]])
                    waited = [(r["queue"], max(0.0, now - r["available_at"])) for r in leased]
                    journals: dict[str, list[JournalEntry]] = {}
                    # only a resumed or retried attempt can have a journal to replay
                    replaying = [
                        r["id"] for r in leased if r["id"] in resuming or r["attempt_count"] > 1
                    ]
                    rows_of: dict[str, list[Row]] = {}
                    for entry in tx.all("journal_for_runs", ids=replaying) if replaying else ():
                        rows_of.setdefault(entry["run_id"], []).append(entry)
                    for run_id, entries in rows_of.items():
                        journals[run_id] = self._journal(entries, resumed=run_id in resuming)
                    reply.attempts = [
                        self._attempt_spec(
                            r, env["kind"], r["id"] in resuming, journals.get(r["id"], [])
                        )
                        for r in leased
                    ]
                    for spec in reply.attempts:  # their starts are counted now (see AttemptSpec)
                        spec.rate_limited = queues[spec.queue].rate_limit is not None
                if len(reply.attempts) < capacity:  # a full lease asks again at once anyway
                    due = tx.one("next_available_at", env_id=env_id, now=now)
                    reply.next_due = due["at"] if due else None
                    if skipped:
                        reply.next_due = min(reply.next_due or math.inf, now + SKIPPED_QUEUE_RETRY)
                    if admission.rate_free_at < math.inf:  # a rate limit holds runs back
                        reply.next_due = min(reply.next_due or math.inf, admission.rate_free_at)
            if hook_capacity > 0:
                rows = tx.all(
                    "lease_hooks",
                    env_id=env_id,
                    now=now,
                    until=now + HOOK_LEASE_SECONDS,
                    limit=hook_capacity,
                )
                reply.hooks = [self._hook_job(r, env["kind"]) for r in rows]
            if not reply.lease_seq:
                reply.lease_seq = worker["lease_seq"]
        if values:
            for spec in reply.attempts:
                spec.env = values
            for job in reply.hooks:
                job.env = values
        if reply.attempts:
            self._events.changed(env_id, [a.run_id for a in reply.attempts])
        observers = self._transitions.observers
        if observers and capacity > 0:
            for queue, seconds in waited:
                observers.run_started(env_id, queue, seconds)
            observers.leased(env_id, time.perf_counter() - began, len(waited))
        return reply

    @staticmethod
    def _journal(rows: list[Row], resumed: bool) -> list[JournalEntry]:
        """A run's journal as its attempt replays it. Resuming, the waits its code had not got
        past are marked: their waitpoints completed after the run's last durable call, so the
        run was suspended on them (their on_resume hooks run when the code comes to them)."""
        last = max(r["created_at"] for r in rows)
        return [
            JournalEntry(
                r["key"],
                r["value"],
                r["waitpoint_id"],
                r["waitpoint_status"],
                r["waitpoint_result"],
                r["waitpoint_kind"],
                r["waitpoint_complete_at"],
                r["attempt"],
                suspended_on=resumed
                and r["waitpoint_completed_at"] is not None
                and r["waitpoint_completed_at"] > last,
            )
            for r in rows
        ]

    @staticmethod
    def _attempt_spec(
        row: Row, environment: str, resumed: bool, journal: list[JournalEntry]
    ) -> AttemptSpec:
        return AttemptSpec(
            run_id=row["id"],
            task_id=row["task_id"],
            attempt=row["attempt_count"],
            payload_json=row["payload"],
            max_attempts=row["max_attempts"],
            max_duration=row["max_duration"],
            machine=row["machine"],
            tags=json.loads(row["tags"]),
            metadata=json.loads(row["metadata"]),
            queue=row["queue"],
            concurrency_key=row["concurrency_key"],
            environment=environment,
            run_on_start=row["attempt_count"] == 1 and not resumed and "on_start" in row["hooks"],
            parent_id=row["parent_id"],
            root_id=row["root_id"],
            batch_id=row["batch_id"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            compute_used=row["compute_used"],
            compute_seconds=row["compute_seconds"],
            resumed=resumed,
            journal=journal,
            version=row["version"],
            fence=row["fence"],
            metadata_seq=row["metadata_seq"],
            attempt_started_at=row["attempt_started_at"] or 0.0,
            trace_context=json.loads(row["trace_context"]) if row["trace_context"] else None,
        )

    @staticmethod
    def _hook_job(row: Row, environment: str) -> HookJob:
        return HookJob(
            run_id=row["id"],
            task_id=row["task_id"],
            hook=row["hook"],
            status=row["status"],
            payload_json=row["payload"],
            output_json=row["output"],
            error=json.loads(row["error"]) if row["error"] else None,
            attempt=row["attempt_count"],
            tags=json.loads(row["tags"]),
            metadata=json.loads(row["metadata"]),
            machine=row["machine"],
            environment=environment,
            version=row["version"],
            fence=row["fence"],
        )

    def check(self, env_id: str, worker_id: str) -> None:
        """NotFound unless the worker registered in this environment."""
        with self._store.read() as tx:
            row = tx.one("get_worker", id=worker_id)
        if row is None or row["env_id"] != env_id:
            raise NotFound(
                f"worker {worker_id!r} is not registered in this environment; register it first"
            )

    def heartbeat(self, worker_id: str, beat: Heartbeat) -> HeartbeatReply:
        """A worker is alive and holds `beat.running`. Answers which of them it must stop
        (canceled, taken back, or handed out again since) and which of its leases were revoked.

        Runs the engine handed the worker in a lease it has received (`beat.lease_seq`) that it
        does not list are lost: the worker restarted under the same id, or dropped them. Their
        attempt ends as crashed and they are retried, rather than stay EXECUTING forever under
        a worker that keeps heartbeating. Runs of leases it has not received yet are left alone:
        their answer may still be on its way."""
        now = self._clock()
        with self._store.transaction() as tx:
            worker = tx.one("touch_worker", id=worker_id, now=now)
            held = dict(beat.running)
            stop = (
                [
                    r["id"]
                    for r in tx.all("runs_by_id_fenced", ids=list(held))
                    if r["status"] != RunStatus.EXECUTING
                    or r["worker_id"] != worker_id
                    or r["fence"] != held[r["id"]]
                ]
                if held
                else []
            )
            unknown = [
                r
                for r in tx.all("runs_held_by", worker_id=worker_id, lease_seq=beat.lease_seq)
                if r["id"] not in held
            ]
            # canceled runs whose bodies the worker no longer runs (of leases it has received):
            # their slots free
            stopped = [
                r
                for r in tx.all("stopping_runs_of_worker", worker_id=worker_id)
                if r["id"] not in held and r["lease_seq"] <= beat.lease_seq
            ]
            if stopped:
                tx.run("release_slots", ids=[r["id"] for r in stopped])
        for env_id in {r["env_id"] for r in stopped}:
            self._events.emit("available", env_id)
        if unknown:
            self._take_back_unknown(
                worker_id, {r["id"]: r["fence"] for r in unknown}, unknown[0]["env_id"]
            )
        return HeartbeatReply(stop=stop, revoked_through=worker["revoked_through"] if worker else 0)

    def _take_back_unknown(self, worker_id: str, fences: dict[str, int], env_id: str) -> None:
        now = self._clock()
        envs: set[str] = set()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            for row in tx.all("get_runs_by_id", ids=list(fences)):
                if (
                    row["status"] == RunStatus.EXECUTING
                    and row["worker_id"] == worker_id
                    and row["fence"] == fences[row["id"]]
                ):
                    envs |= self._transitions.take_back(
                        tx,
                        row,
                        "crashed",
                        "WorkerLost",
                        "The worker never started this attempt (its lease answer was lost).",
                        now,
                    )
        for env in envs:
            self._events.emit("available", env)

    def complete(
        self, worker_id: str, outcomes: list[AttemptOutcome], env_id: str | None = None
    ) -> None:
        """Record how attempts ended. An outcome of an attempt that no longer holds its run
        (canceled, taken back after a lost heartbeat, or of an older fence) is ignored."""
        if not outcomes:
            return
        now = self._clock()
        envs: set[str] = set()
        settled: list[str] = []
        with self._store.transaction() as tx:
            worker = tx.one("get_worker", id=worker_id)
            if worker is None:
                return
            tx.lock(worker["env_id"])
            rows = {r["id"]: r for r in tx.all("get_runs_by_id", ids=[o.run_id for o in outcomes])}
            for outcome in outcomes:
                row = rows.get(outcome.run_id)
                if (
                    row is None
                    or not holds(row, worker_id, outcome.fence)
                    or row["attempt_count"] != outcome.attempt
                    or (env_id is not None and row["env_id"] != env_id)
                ):
                    continue
                self._transitions.settle(tx, row, outcome, now)
                rows.pop(
                    outcome.run_id
                )  # a second outcome of the same attempt in the batch counts no more
                envs.add(row["env_id"])  # it left EXECUTING: its slot is free for the next run
                settled.append(row["id"])
        for env_id in envs:
            self._events.emit("available", env_id)
        if settled:
            self._events.changed(worker["env_id"], settled)

    def hook_done(self, run_id: str, hook: str, fence: int, env_id: str | None = None) -> None:
        """A lifecycle hook ran. Counts only from the hook job handed out last (its fence)."""
        with self._store.transaction() as tx:
            if env_id is not None and tx.one("get_run", env_id=env_id, id=run_id) is None:
                return
            tx.run("finish_hook", id=run_id, hook=hook, fence=fence)

    def append_logs(self, entries: list[LogEntry], env_id: str | None = None) -> int:
        """Store log lines of attempts; the number stored. A line counts only while its
        attempt's fence is its run's fence (with `env_id`, only for runs of that environment):
        lines of a stale attempt, and lines no database can hold (a number out of range), are
        dropped rather than refused, so one bad line never holds back the others."""
        entries = [e for e in entries if _storable(e)]
        if not entries:
            return 0
        with self._store.read() as tx:
            fences = {
                r["id"]: r["fence"]
                for r in tx.all("get_runs_by_id", ids=list({e.run_id for e in entries}))
                if env_id is None or r["env_id"] == env_id
            }
        entries = [e for e in entries if fences.get(e.run_id) == e.fence]
        if not entries:
            return 0
        # PostgreSQL text cannot hold a NUL character (in the JSON of attributes it is escaped)
        rows = [
            {
                "run_id": e.run_id,
                "attempt": e.attempt,
                "seq": e.seq,
                "ts": e.ts,
                "level": as_text(e.level)[:20],
                "message": as_text(e.message).replace("\x00", "\ufffd"),
                "attributes": _attributes(e.attributes),
            }
            for e in entries
        ]
        with self._store.transaction() as tx:
            tx.run_many("insert_log", rows)
        return len(rows)

    def stopped(self, worker_id: str) -> None:
        """A worker shut down cleanly: it takes no more runs, and the attempts it still held
        run again without using up one of their retries (the worker stopped, not the code)."""
        self.reclaim(
            worker_id,
            "The worker shut down before this attempt finished; it runs again.",
            kind="interrupted",
        )

    def reclaim(self, worker_id: str, message: str, kind: OutcomeKind = "crashed") -> None:
        now = self._clock()
        envs: set[str] = set()
        with self._store.transaction() as tx:
            worker = tx.one("get_worker", id=worker_id)
            if worker is None:
                return
            tx.lock(worker["env_id"])
            tx.run("stop_worker", id=worker_id, now=now)
            tx.run("revoke_leases", id=worker_id)
            name = "Interrupted" if kind == "interrupted" else "WorkerLost"
            for row in tx.all("runs_of_worker", worker_id=worker_id):
                envs |= self._transitions.take_back(tx, row, kind, name, message, now)
            # a worker that stopped, or stopped its attempts itself before it was judged lost,
            # runs no body
            stopping = tx.all("stopping_runs_of_worker", worker_id=worker_id)
            if stopping:
                tx.run("release_slots", ids=[r["id"] for r in stopping])
                envs.add(worker["env_id"])
        for env_id in envs:
            self._events.emit("available", env_id)


def _attributes(attributes: dict[str, Any] | None) -> str | None:
    """A line's attributes as stored; attributes no page could show (nested past the limit, not
    Unicode) are replaced by a note saying why, and the line is kept."""
    if not attributes:
        return None
    problem = json_problem(attributes, "attributes")
    return json_text({"attributes_dropped": problem} if problem else attributes)


def _storable(entry: LogEntry) -> bool:
    """Whether a log line's numbers fit the database (a worker's bug must not fail the batch)."""
    return (
        0 <= entry.seq < 2**63
        and 0 <= entry.attempt < 2**31
        and 0 <= entry.fence < 2**63
        and math.isfinite(entry.ts)
        and isinstance(entry.message, str)
        and isinstance(entry.level, str)
    )
