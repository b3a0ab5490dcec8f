"""The in-memory platform behind `testing.run`: runs, their journals, waitpoints, and a clock
that jumps instead of sleeping.

    World ─ runs (RunState, one driver task each: attempts, suspensions, retries, hooks)
          ─ waitpoints (durations, child runs, batches, tokens) and timers on the virtual clock
          ─ the drive loop: suspends runs blocked on waitpoints, and when nothing can move
            but time, jumps the clock to the next timer
          ─ children (children.py): runs and batches a run triggers, batches' idempotency keys
          ─ tokens (tokens.py): made, waited for, completed by the test or by timeout
    Segment ─ one execution of a run's function: the SDK's `scope.durable` (sdk/context.py)

A run's durable calls are journaled under the same keys as on the platform (worker/replay.py);
a run blocked on a waitpoint is suspended (its function canceled) and, once the waitpoint
completes, runs again from the top, answered from its journal, as a resumed run does on the
platform. Nothing here sleeps for real, opens a database or talks to a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import heapq
import itertools
import json
import random
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conveyor.durations import MAX_SECONDS
from conveyor.errors import (
    AbortTaskRunError,
    InvalidRequest,
    PayloadError,
    TaskDefinitionError,
)
from conveyor.metadata_ops import add_tag, apply_op, metadata_json
from conveyor.models import (
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_HINT,
    RetryPolicy,
    RunStatus,
    TriggerOptions,
)
from conveyor.protocol import MetadataOp
from conveyor.sdk import context as ctxmod
from conveyor.sdk.context import AttemptInfo, AttemptScope, Context, RunInfo, TaskInfo
from conveyor.sdk.hooks import RunFailure, Wait, call_hooks, run_result, run_with_middleware
from conveyor.sdk.metadata import RunMetadata
from conveyor.sdk.task import Task
from conveyor.serialization import dumps
from conveyor.testing.children import Children
from conveyor.testing.records import (
    JournalRecord,
    LogLine,
    Mock,
    RunStalled,
    RunState,
    TokenCompletion,
    Waitpoint,
)
from conveyor.testing.segment import Segment
from conveyor.testing.tokens import Tokens
from conveyor.worker.executor import _jsonable, error_dict
from conveyor.worker.replay import JournalMismatch

SETTLE = 0.002  # real seconds of no change before the world suspends a blocked run or moves time
MAX_JUMPS = 100_000  # clock jumps in one test run before it is called endless

_RETRIABLE = {"failed": True, "crashed": True}
_STATUS = {
    "completed": RunStatus.COMPLETED,
    "failed": RunStatus.FAILED,
    "aborted": RunStatus.FAILED,
    "payload_invalid": RunStatus.FAILED,
    "timed_out": RunStatus.TIMED_OUT,
    "crashed": RunStatus.CRASHED,
    "system_failure": RunStatus.SYSTEM_FAILURE,
}

# -- the world ---------------------------------------------------------------------------------


class World:
    """Every run of one `testing.run`, the waitpoints between them and the virtual clock."""

    def __init__(
        self,
        *,
        tasks: dict[str, Task[Any]],
        mocks: dict[str, Mock],
        completions: list[TokenCompletion],
        now: float,
        environment: str,
        seed: int | None,
    ) -> None:
        self.tasks = dict(tasks)
        self.mocks = mocks
        self.completions = completions
        self.now = now
        self.environment = environment
        self.rng = random.Random(seed)
        self.runs: dict[str, RunState] = {}
        self.waitpoints: dict[str, Waitpoint] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self.children = Children(self)
        self.tokens = Tokens(self)
        self.drivers: list[asyncio.Task[None]] = []
        self.version = 0
        self.jumps = 0
        self.failure: BaseException | None = None
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._logs_lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):04d}"

    def changed(self) -> None:
        self.version += 1

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def at(self, when: float, callback: Callable[[], object]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), callback))

    # -- finding tasks -----------------------------------------------------------------------

    def resolve(self, task_id: str, parent: RunState | None) -> Task[Any] | str:
        """The task of an id: one given to the test, one the triggering task's module names, or
        the one task of that id defined at module level in the code imported. A message when
        there is none, or several."""
        task = self.tasks.get(task_id)
        if task is not None:
            return task
        near = parent.task if parent is not None else None
        if near is not None:
            module = sys.modules.get(getattr(near.fn, "__module__", ""))
            found = _tasks_in(module, task_id)
            if found:
                self.tasks[task_id] = found[0]
                return found[0]
        candidates: list[Task[Any]] = []
        modules: list[str] = []
        for name, module in list(sys.modules.items()):
            for value in _tasks_in(module, task_id):
                if all(value is not c for c in candidates):
                    candidates.append(value)
                    modules.append(name)
        if len(candidates) == 1:
            self.tasks[task_id] = candidates[0]
            return candidates[0]
        if candidates:
            return (
                f"task {task_id!r} is defined in several modules ({', '.join(modules)}); pass "
                "the one to run in testing.run(..., tasks=[...])"
            )
        return (
            f"task {task_id!r} is not defined in the code imported by the test; import its "
            "module, pass it in testing.run(..., tasks=[...]), or mock it"
        )

    # -- runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        task_id: str,
        payload: Any,
        options: TriggerOptions,
        *,
        parent: RunState | None = None,
        batch_id: str | None = None,
    ) -> tuple[RunState, bool]:
        """A new run (started at once, or after its delay), or the run of the same idempotency
        key (True: cached)."""
        if options.idempotency_key:
            existing = self.idempotency.get((task_id, options.idempotency_key))
            if existing is not None:
                return self.runs[existing], True
        mock = self.mocks.get(task_id)
        found = None if mock is not None else self.resolve(task_id, parent)
        task = found if isinstance(found, Task) else None
        policy = RetryPolicy()
        if task is not None:
            policy = task.definition(
                default_retry=RetryPolicy(), max_duration=None, machine="small-1x"
            ).retry
        run = RunState(
            id=self.new_id("run"),
            task_id=task_id,
            task=task,
            payload=payload,
            created_at=self.now,
            parent_id=parent.id if parent else None,
            root_id=(parent.root_id or parent.id) if parent else None,
            batch_id=batch_id,
            tags=list(options.tags),
            metadata=dict(options.metadata or {}),
            max_attempts=options.max_attempts or policy.max_attempts,
            retry=policy,
            max_duration=options.max_duration or (task.max_duration if task is not None else None),
        )
        self.runs[run.id] = run
        if parent is not None:
            parent.children.append(run.id)
        if options.idempotency_key:
            self.idempotency[(task_id, options.idempotency_key)] = run.id
        self.changed()
        if mock is not None:
            run.mocked = True
            run.attempt = 1
            status, output, error = mock.outcome(payload)
            self.finish(run, status, output, error)
        elif task is None:
            self.finish(
                run,
                RunStatus.SYSTEM_FAILURE,
                None,
                {
                    "name": "TaskNotFound",
                    "code": "task_not_found",
                    "message": found,
                },
            )
        else:
            delay = _delay_seconds(options.delay, self.now)
            self.drivers.append(asyncio.get_running_loop().create_task(self.drive(run, delay)))
        return run, False

    def finish(
        self, run: RunState, status: RunStatus, output: Any, error: dict[str, Any] | None
    ) -> None:
        run.status = status
        run.output = output
        run.error = error
        run.ended.set()
        self.changed()
        for waitpoint in list(self.waitpoints.values()):
            if waitpoint.status != "PENDING" or run.id not in waitpoint.run_ids:
                continue
            runs = [self.runs[r] for r in waitpoint.run_ids]
            if all(r.finished for r in runs):
                self.complete_run_waitpoint(waitpoint)

    def complete_run_waitpoint(self, waitpoint: Waitpoint) -> None:
        results = [self.runs[r].result() for r in waitpoint.run_ids]
        self.complete(
            waitpoint,
            "COMPLETED",
            {"ok": True, "runs": results} if waitpoint.kind == "batch" else results[0],
        )

    def complete(self, waitpoint: Waitpoint, status: str, result: Any) -> bool:
        if waitpoint.status != "PENDING":
            return False
        waitpoint.status = status
        waitpoint.result = result
        waitpoint.completed_at = self.now
        waitpoint.done.set()
        self.changed()
        return True

    async def drive(self, run: RunState, delay: float) -> None:
        """A run from its start to its end: attempts, suspensions, retries and hooks."""
        try:
            if delay > 0:
                run.status = RunStatus.DELAYED
                await self.sleep(run, delay)
            await self._attempts(run)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a fault of the kit: fail the test, not only the run
            self.failure = exc
            raise

    async def _attempts(self, run: RunState) -> None:
        task = run.task
        assert task is not None
        run.started_at = self.now
        while True:
            run.attempt += 1
            run.attempt_started_at = self.now
            run.retry_at = None
            run.status = RunStatus.EXECUTING
            if run.attempt == 1 and task.hooks_for("on_start"):
                await self._hook(run, "on_start")
            resumed = False
            while True:
                kind, output, error = await self._segment(run, resumed)
                if kind != "suspended":
                    break
                segment = run.segment
                assert segment is not None and segment.suspended_on is not None
                run.status = RunStatus.WAITING
                await self.wait_all(run, segment.suspended_on)
                run.status = RunStatus.EXECUTING
                resumed = True
            run.segment = None
            if _RETRIABLE.get(kind) and run.attempt < run.max_attempts:
                run.status = RunStatus.QUEUED
                delay = _retry_delay(run.retry, run.attempt, self.rng)
                if kind == "failed" and run.retry_at is not None:  # catch_error's time
                    delay = max(0.0, run.retry_at - self.now)
                await self.sleep(run, delay)
                continue
            self.finish(run, _STATUS[kind], output, error)
            break
        hook = {
            RunStatus.COMPLETED: "on_success",
            RunStatus.FAILED: "on_failure",
            RunStatus.CRASHED: "on_failure",
            RunStatus.SYSTEM_FAILURE: "on_failure",
            RunStatus.TIMED_OUT: "on_failure",
        }.get(run.status)
        if hook is not None and task.hooks_for(hook):
            await self._hook(run, hook)
        if hook in ("on_success", "on_failure") and task.hooks_for("on_complete"):
            await self._hook(run, "on_complete")

    async def sleep(self, run: RunState, seconds: float) -> None:
        """Wait on the virtual clock (a retry's backoff, a trigger's delay)."""
        wake = asyncio.Event()
        self.at(self.now + seconds, wake.set)
        run.blocked = True
        self.changed()
        try:
            await wake.wait()
        finally:
            run.blocked = False
            self.changed()

    async def wait_all(self, run: RunState, waitpoint_ids: list[str]) -> None:
        run.blocked = True
        self.changed()
        try:
            for waitpoint_id in waitpoint_ids:
                await self.waitpoints[waitpoint_id].done.wait()
        finally:
            run.blocked = False
            self.changed()

    def context(self, run: RunState) -> Context:
        task = run.task
        return Context(
            run=RunInfo(
                id=run.id,
                tags=list(run.tags),
                metadata=copy.deepcopy(run.metadata),
                created_at=run.created_at,
                started_at=run.started_at,
                max_attempts=run.max_attempts,
                max_duration=run.max_duration,
                parent_id=run.parent_id,
                root_id=run.root_id,
                batch_id=run.batch_id,
            ),
            attempt=AttemptInfo(run.attempt, self.now),
            task=TaskInfo(run.task_id, task.file if task else None),
            environment=self.environment,
            queue=task.queue.name if task else "",
            machine=(task.machine if task else None) or "small-1x",
        )

    async def _segment(self, run: RunState, resumed: bool) -> tuple[str, Any, Any]:
        """Run the function once, to its end or until it is suspended."""
        previous = run.segment.suspended_on if resumed and run.segment else None
        segment = run.segment = Segment(self, run, resumed, previous)
        scope = AttemptScope(self.context(run), _Runtime(self), durable=segment)

        async def apply(ops: list[MetadataOp]) -> None:
            self.apply_metadata(run, ops)

        scope.metadata = RunMetadata(
            run.metadata,
            run.metadata_seq,
            apply,
            asyncio.get_running_loop(),
            tags=run.tags,
            position=lambda: segment.position,
            parent_id=run.parent_id,
            root_id=run.root_id,
        )
        segment.task = asyncio.get_running_loop().create_task(
            self._execute(run, segment, scope), context=contextvars.copy_context()
        )
        self.changed()
        try:
            outcome = await asyncio.shield(segment.task)
        except asyncio.CancelledError:
            this = asyncio.current_task()
            if segment.suspended_on is None or (this is not None and this.cancelling()):
                segment.task.cancel()
                raise
            outcome = ("suspended", None, None)
        run.compute_used += segment.compute()
        return outcome

    async def _execute(
        self, run: RunState, segment: Segment, scope: AttemptScope
    ) -> tuple[str, Any, Any]:
        task = run.task
        assert task is not None
        ctxmod.enter_scope(scope)
        try:
            payload = task.parse_payload(copy.deepcopy(run.payload))
        except PayloadError as exc:
            return "payload_invalid", None, error_dict(exc, "payload_invalid")

        async def wait_hook(name: str, wait: Wait) -> None:
            await call_hooks(name, task.hooks_for(name), (payload, wait, scope.ctx), scope.log)

        segment.wait_hook = wait_hook
        remaining = run.max_duration - run.compute_used if run.max_duration else None
        timeout = asyncio.timeout(max(remaining, 0.001)) if remaining is not None else None
        try:
            async with timeout or contextlib.nullcontext():
                args = (payload, scope.ctx) if task.takes_ctx else (payload,)

                async def call() -> Any:
                    if task.is_async:
                        return await task.fn(*args)
                    return await asyncio.get_running_loop().run_in_executor(
                        None, contextvars.copy_context().run, task.fn, *args
                    )

                output = await run_with_middleware(scope.ctx, call)
            output_json = dumps(output, "output")
            if len(output_json) > MAX_PAYLOAD_BYTES:
                raise PayloadError(
                    f"output is {len(output_json) / 1024**2:.1f} MB of JSON; the limit is "
                    f"{MAX_PAYLOAD_BYTES // 1024**2} MB: {MAX_PAYLOAD_HINT}"
                )
            segment.check_complete()
            return "completed", json.loads(output_json), None
        except JournalMismatch as exc:
            return "aborted", None, error_dict(exc, "journal_mismatch")
        except AbortTaskRunError as exc:
            return "aborted", None, error_dict(exc, "aborted")
        except TimeoutError as exc:
            if timeout is not None and timeout.expired():
                return (
                    "timed_out",
                    None,
                    {
                        "name": "MaxDurationExceeded",
                        "code": "timed_out",
                        "message": (
                            "The attempt ran longer than its max_duration of "
                            f"{run.max_duration:g}s."
                        ),
                    },
                )
            return await self._raised(run, task, payload, exc, scope)
        except PayloadError as exc:
            code = "output_invalid" if "output" in exc.message else exc.code
            return "aborted", None, error_dict(exc, code)
        except (InvalidRequest, TaskDefinitionError) as exc:
            return "aborted", None, error_dict(exc, exc.code)
        except MemoryError as exc:
            return "crashed", None, error_dict(exc, "out_of_memory")
        except Exception as exc:
            return await self._raised(run, task, payload, exc, scope)

    async def _raised(
        self, run: RunState, task: Task, payload: Any, exc: BaseException, scope: AttemptScope
    ) -> tuple[str, Any, Any]:
        """As the executor: the task's catch_error decides, else the retry policy."""
        try:
            decision = await task.caught(payload, exc, scope.ctx)
        except AbortTaskRunError:
            decision = {"skip_retrying": True}
        except Exception as problem:
            scope.log("error", f"catch_error failed: {problem}; the retry policy applies")
            decision = None
        if decision is not None and decision.get("skip_retrying"):
            return "aborted", None, error_dict(exc)
        if decision is not None and decision.get("retry_at") is not None:
            run.retry_at = min(decision["retry_at"], self.now + MAX_SECONDS)
        return "failed", None, error_dict(exc)

    async def _hook(self, run: RunState, name: str) -> None:
        """A lifecycle hook, with the arguments the executor gives it; its error is logged."""
        task = run.task
        assert task is not None
        ctx = self.context(run)
        scope = AttemptScope(ctx, _Runtime(self))
        try:
            payload = task.parse_payload(copy.deepcopy(run.payload))
        except PayloadError:
            payload = copy.deepcopy(run.payload)
        if name == "on_success":
            args: tuple[Any, ...] = (payload, copy.deepcopy(run.output), ctx)
        elif name == "on_failure":
            args = (payload, RunFailure(run.status.value, run.error), ctx)
        elif name == "on_complete":
            output = copy.deepcopy(run.output)
            result = run_result(run.id, run.task_id, run.status.value, output, run.error)
            args = (payload, result, ctx)
        else:
            args = (payload, ctx)

        async def call() -> None:
            ctxmod.enter_scope(scope)
            await call_hooks(name, task.hooks_for(name), args, scope.log)  # task's, project's

        run.in_hook = True
        try:
            await asyncio.get_running_loop().create_task(call(), context=contextvars.copy_context())
        finally:
            run.in_hook = False
            self.changed()

    # -- durable calls, as the engine answers them (engine/durable.py) --------------------------

    def apply_metadata(self, run: RunState, ops: list[MetadataOp]) -> None:
        """Metadata ops of a run's code, as the engine applies them (skipping a replay's)."""
        for op in ops:
            if op.seq <= run.metadata_seq:
                continue
            if op.op == "tag":
                add_tag(run.tags, op.value)
            else:
                target_id = {"self": None, "parent": run.parent_id, "root": run.root_id}[op.target]
                target = self.runs.get(target_id or run.id, run)
                apply_op(target.metadata, op.op, op.key, op.value)
                metadata_json(target.metadata, f"run {target.id}")
            run.metadata_seq = op.seq
        self.changed()

    def journal(
        self, run: RunState, key: str, value: Any, waitpoint: Waitpoint | None = None
    ) -> Any:
        entry = run.journal.get(key)
        if entry is None:
            entry = run.journal[key] = JournalRecord(
                key, value, waitpoint=waitpoint, attempt=run.attempt
            )
            self.changed()
        return copy.deepcopy(entry.value)

    def new_waitpoint(self, kind: str, **fields: Any) -> Waitpoint:
        waitpoint = Waitpoint(self.new_id("token" if kind == "token" else "wait"), kind, self.now)
        for name, value in fields.items():
            setattr(waitpoint, name, value)
        self.waitpoints[waitpoint.id] = waitpoint
        return waitpoint

    def wait_until(
        self, run: RunState, key: str, until: float, seconds: float | None
    ) -> JournalRecord:
        if seconds is not None:  # a duration counts from now on the platform's clock
            until = self.now + seconds
        waitpoint = self.new_waitpoint("duration", complete_at=until)
        if until <= self.now:
            self.complete(waitpoint, "COMPLETED", {"ok": True})
        else:
            self.at(until, lambda: self.complete(waitpoint, "COMPLETED", {"ok": True}))
        self.journal(run, key, {"until": until}, waitpoint)
        return run.journal[key]

    # -- moving the world on -----------------------------------------------------------------

    def quiet(self) -> bool:
        """Every run that has not ended waits on the world: only time can move it on."""
        for run in self.runs.values():
            if run.in_hook:
                return False
            if run.finished or run.blocked:
                continue
            if run.segment is None or not run.segment.idle():
                return False
        return True

    def fire_timers(self) -> bool:
        """Jump the clock to the next timer and fire every timer due then."""
        if not self._timers:
            return False
        self.jumps += 1
        if self.jumps > MAX_JUMPS:
            raise RunStalled(
                f"the runs waited {MAX_JUMPS} times without ending; a run that waits in a loop "
                "needs something that ends the loop"
            )
        when = self._timers[0][0]
        self.now = max(self.now, when)
        while self._timers and self._timers[0][0] <= self.now:
            _, _, callback = heapq.heappop(self._timers)
            callback()
        self.changed()
        return True

    async def run_until_ended(self, root: RunState) -> None:
        """Drive the world until the root run and every run it started have ended, or until
        nothing can end them (RunStalled when the root run is among those)."""
        seen = -1
        while True:
            if self.failure is not None:
                raise self.failure
            if all(driver.done() for driver in self.drivers):
                return
            await asyncio.sleep(SETTLE)
            if self.version != seen:
                seen = self.version
                continue
            suspended = False
            for run in self.runs.values():
                if run.segment is not None and run.segment.suspendable():
                    suspended = run.segment.suspend() or suspended
            if suspended or not self.quiet() or self.fire_timers():
                continue
            if not root.finished:
                raise RunStalled(self.stalled_message())
            return  # runs started by the root that nothing will end stay as they are

    def stalled_message(self) -> str:
        waits = []
        for run in self.runs.values():
            if run.finished:
                continue
            for waitpoint in self.waitpoints.values():
                if waitpoint.status != "PENDING" or not self._waited_by(run, waitpoint):
                    continue
                if waitpoint.kind == "token":
                    named = (
                        f"idempotency_key={waitpoint.idempotency_key!r}"
                        if waitpoint.idempotency_key
                        else f"tags={waitpoint.tags!r}"
                        if waitpoint.tags
                        else "no idempotency key or tags"
                    )
                    waits.append(
                        f"run {run.id} ({run.task_id}) waits on token {waitpoint.id} ({named})"
                    )
                else:
                    waits.append(
                        f"run {run.id} ({run.task_id}) waits on {waitpoint.kind} {waitpoint.id}"
                    )
        detail = "; ".join(waits) or "no run can go on"
        return (
            f"the run can never end: {detail}. Complete tokens with "
            "tokens=[testing.complete_token(data, idempotency_key=... or tags=[...])], or give "
            "them a timeout"
        )

    def _waited_by(self, run: RunState, waitpoint: Waitpoint) -> bool:
        return any(e.waitpoint is waitpoint for e in run.journal.values())

    async def close(self) -> None:
        for driver in self.drivers:
            driver.cancel()
        for run in self.runs.values():
            if run.segment is not None and run.segment.task is not None:
                run.segment.task.cancel()
        await asyncio.gather(*self.drivers, return_exceptions=True)

    def log(self, scope: AttemptScope, level: str, message: str, attrs: Any) -> None:
        run = self.runs.get(scope.ctx.run.id)
        if run is None:
            return
        durable = scope.durable
        if isinstance(durable, Segment) and durable.replaying:
            return
        with self._logs_lock:
            run.logs.append(LogLine(level, message, attrs, scope.ctx.attempt.number, self.moment()))


class _Runtime:
    """The platform as the SDK sees it inside a test run (sdk/context.py Runtime)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def log(
        self, scope: AttemptScope, level: str, message: str, attributes: dict[str, Any] | None
    ) -> None:
        self.world.log(scope, level, str(message), _jsonable(attributes))


def _tasks_in(module: Any, task_id: str) -> list[Task[Any]]:
    try:
        values = list(vars(module).values())
    except TypeError:
        return []
    return [v for v in values if isinstance(v, Task) and v.id == task_id]


def _delay_seconds(delay: Any, now: float) -> float:
    if delay is None:
        return 0.0
    if isinstance(delay, datetime):
        moment = delay if delay.tzinfo else delay.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    if isinstance(delay, str) and "T" in delay:
        moment = datetime.fromisoformat(delay)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now)
    from conveyor.durations import parse_duration

    return float(parse_duration(delay, name="delay"))


def _retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    from conveyor.retries import retry_delay_ms

    return retry_delay_ms(policy, attempt, rng) / 1000.0
