"""An executor process: imports the task code once, then runs many attempts on one event loop.

Started by the supervisor as `python -m conveyor.worker.executor`, it talks over an inherited
socket (pickled tuples, see `channel.py`). Sync task functions run in threads so the loop stays
free. `print`, standard `logging` and `logger` lines go to the attempt they were written in.

It must never decide a run's fate by itself: it reports what happened, the engine decides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conveyor.config import load_config
from conveyor.errors import (
    AbortTaskRunError,
    ConveyorError,
    InvalidRequest,
    PayloadError,
    TaskDefinitionError,
)
from conveyor.eventloop import use_fast_event_loop
from conveyor.models import MACHINES, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_HINT
from conveyor.protocol import (
    AttemptOutcome,
    AttemptSpec,
    DurableCall,
    HookJob,
    LogEntry,
    MetadataCall,
)
from conveyor.sdk import context as ctxmod
from conveyor.sdk.context import AttemptInfo, AttemptScope, Context, RunInfo, TaskInfo
from conveyor.sdk.hooks import RunFailure, Wait, call_hooks, run_result, run_with_middleware
from conveyor.sdk.metadata import RunMetadata
from conveyor.sdk.task import CatchDecision, Task
from conveyor.serialization import as_text, dumps, to_json_value
from conveyor.telemetry import AttemptTrace, Exporter, run_ends
from conveyor.telemetry import start as start_telemetry
from conveyor.worker.capture import flush_partial_lines, install_capture
from conveyor.worker.channel import Channel, ChannelClosed
from conveyor.worker.discovery import definitions, load_tasks
from conveyor.worker.envvars import Variables
from conveyor.worker.machines import apply_machine
from conveyor.worker.replay import JournalMismatch, Replay
from conveyor.worker.watchdog import Watchdog, pipe_sender

FLUSH_INTERVAL = 0.05
CATCH_ERROR_LIMIT = 30.0  # seconds a task's catch_error may take (at most what max_duration leaves)


_OWN_CODE = str(Path(__file__).resolve().parents[1]) + os.sep  # the conveyor package


def _users_frames(summary: traceback.TracebackException) -> None:
    """Leave out Conveyor's own frames (of this exception and the ones it chains), so a
    traceback starts at the task's code; an error raised by Conveyor alone keeps its last line."""
    seen: set[int] = set()
    stack: list[traceback.TracebackException] = [summary]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [
                frame
                for frame in current.stack
                if not os.path.realpath(frame.filename).startswith(_OWN_CODE)
            ]
        )
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def error_dict(exc: BaseException, code: str | None = None) -> dict[str, Any]:
    """An exception as the JSON error a run stores: name, message, stack (from the task's own
    code on), code."""
    summary = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _users_frames(summary)
    stack = "".join(summary.format())
    message = exc.message if isinstance(exc, ConveyorError) else str(exc)
    return {"name": type(exc).__name__, "message": message, "stack": stack, "code": code}


class Executor:
    def __init__(
        self,
        channel: Channel,
        tasks: dict[str, Task],
        environment: str,
        telemetry: Exporter | None = None,
    ) -> None:
        self.channel = channel
        self.tasks = tasks
        self.environment = environment
        self.loop = asyncio.get_running_loop()
        self.running: dict[str, tuple[asyncio.Task[None], AttemptSpec]] = {}
        self.scopes: dict[str, AttemptScope] = {}
        self.cancel_reasons: dict[
            asyncio.Task[None], str
        ] = {}  # why an attempt's task was canceled
        self.pending_calls: dict[int, asyncio.Future[Any]] = {}
        self._next_call = 0
        self._logs: list[LogEntry] = []
        self._logs_lock = threading.Lock()
        self.stopped = asyncio.Event()
        self.tainted = False
        self.variables = Variables()  # the environment's variables, and their redaction
        # OpenTelemetry export (conveyor/telemetry.py), and the traces of the attempts running
        self.telemetry = telemetry
        self.traces: dict[str, AttemptTrace] = {}

    # -- the channel ----------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        """To the supervisor (on the loop's thread, like everything that sends)."""
        try:
            self.channel.send(message)
        except ChannelClosed:
            os._exit(3)  # the supervisor is gone: nobody can receive our results, so stop at once

    async def read_forever(self) -> None:
        while True:
            try:
                message = await self.channel.receive()
            except ChannelClosed:
                os._exit(3)
            self.dispatch(message)

    def dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "attempt":
            spec: AttemptSpec = message[1]
            task = self.loop.create_task(self.run_attempt(spec))
            self.running[spec.run_id] = (task, spec)
        elif kind == "hook":
            self.loop.create_task(self.run_hook(message[1]))
        elif kind == "cancel":
            run_id, reason = message[1], message[2]
            entry = self.running.get(run_id)
            if entry is not None:
                self.cancel_reasons[entry[0]] = reason
                entry[0].cancel()
        elif kind == "reply":
            future = self.pending_calls.pop(message[1], None)
            if future is not None and not future.done():
                if message[2]:
                    future.set_result(message[3])
                else:
                    future.set_exception(_rebuild_error(message[3]))
        elif kind == "stop":
            self.stopped.set()

    # -- Runtime (what AttemptScope calls) ---------------------------------------------------

    def log(
        self, scope: AttemptScope, level: str, message: str, attributes: dict[str, Any] | None
    ) -> None:
        if isinstance(scope.durable, Replay) and scope.durable.replaying:
            return
        entry = LogEntry(
            scope.ctx.run.id,
            scope.ctx.attempt.number,
            scope.next_seq(),
            time.time(),
            level,
            self.variables.redact(as_text(message)),
            self.variables.redact_value(_jsonable(attributes)),
            scope.fence,
        )
        with self._logs_lock:
            self._logs.append(entry)
        trace = self.traces.get(entry.run_id)
        if trace is not None:
            try:
                trace.log(level, entry.message, entry.attributes, entry.ts)
            except Exception as exc:  # export is best effort: the run's own log has the line
                _telemetry_problem(exc)

    def call(self, scope: AttemptScope, call: DurableCall) -> asyncio.Future[Any]:
        """Make a durable call on behalf of the attempt (journal a step, trigger a run, ...)."""
        return self._ask(scope, "call", call)

    def request_suspend(
        self, scope: AttemptScope, waitpoints: list[str], compute_used: float
    ) -> asyncio.Future[Any]:
        """Ask that the attempt's run be suspended on `waitpoints` (see Replay)."""
        return self._ask(scope, "suspend", waitpoints, compute_used)

    def _ask(self, scope: AttemptScope, kind: str, *args: Any) -> asyncio.Future[Any]:
        """Send the supervisor a request of the attempt; the future holds its reply."""
        self._next_call += 1
        future: asyncio.Future[Any] = self.loop.create_future()
        self.pending_calls[self._next_call] = future
        self.flush_logs()
        run, attempt = scope.ctx.run.id, scope.ctx.attempt.number
        self.send((kind, self._next_call, run, attempt, scope.fence, *args))
        return future

    def flush_logs(self) -> None:
        with self._logs_lock:
            logs, self._logs = self._logs, []
        if logs:
            self.send(("logs", logs))

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush_logs()

    # -- attempts ---------------------------------------------------------------------------

    def context(self, spec: AttemptSpec, task: Task | None) -> Context:
        run = RunInfo(
            id=spec.run_id,
            tags=spec.tags,
            metadata=spec.metadata,
            created_at=spec.created_at,
            started_at=spec.started_at,
            max_attempts=spec.max_attempts,
            max_duration=spec.max_duration,
            parent_id=spec.parent_id,
            root_id=spec.root_id,
            batch_id=spec.batch_id,
            concurrency_key=spec.concurrency_key,
        )
        return Context(
            run=run,
            attempt=AttemptInfo(spec.attempt, time.time()),
            task=TaskInfo(spec.task_id, task.file if task else None),
            environment=spec.environment,
            queue=spec.queue,
            machine=spec.machine,
        )

    async def run_attempt(self, spec: AttemptSpec) -> None:
        self.variables.apply(spec.env)
        outcome = await self._attempt(spec)
        outcome.error = self.variables.redact_value(outcome.error)
        scope = self.scopes.get(spec.run_id)
        this = asyncio.current_task()
        if (
            scope is not None
            and isinstance(scope.metadata, RunMetadata)
            and self.cancel_reasons.get(this) is None  # type: ignore[arg-type]
        ):
            try:  # the run's last metadata changes reach the platform before its outcome
                await scope.metadata.flush()
            except Exception as exc:  # refused or unreachable: the outcome still counts
                scope.log("warning", f"the run's last metadata changes were not saved: {exc}")
        scope = self.scopes.pop(spec.run_id, None)
        if scope is not None:
            flush_partial_lines(scope)
            if isinstance(scope.durable, Replay):
                scope.durable.close()
        if self.running.get(spec.run_id, (None,))[0] is this:
            self.running.pop(spec.run_id, None)
        reason = self.cancel_reasons.pop(this, None)  # type: ignore[arg-type]
        self.flush_logs()
        self.end_trace(spec, outcome, reason)
        if reason in ("canceled", "stale"):
            # the body has stopped: its slot may go to another run
            self.send(("ended", spec.run_id))
            return  # the engine already ended or took back the run; nothing to report
        if reason == "suspended":
            return
        outcome.fence = spec.fence
        self.send(("outcome", outcome, self.tainted))

    async def _attempt(self, spec: AttemptSpec) -> AttemptOutcome:
        task = self.tasks.get(spec.task_id)
        if task is None:
            return AttemptOutcome(
                spec.run_id,
                spec.attempt,
                "system_failure",
                error={
                    "name": "TaskNotFound",
                    "code": "task_not_found",
                    "message": (
                        f"task {spec.task_id!r} is not defined in the worker's code (was it "
                        "renamed or deleted?)"
                    ),
                },
            )
        ctx = self.context(spec, task)
        scope = self.scopes[spec.run_id] = AttemptScope(
            ctx,
            self,
            fence=spec.fence,
            compute_before=spec.compute_seconds,
            attempt_compute_before=spec.compute_used,
        )
        remaining = spec.max_duration - spec.compute_used if spec.max_duration else None
        timeout_cm = (
            asyncio.timeout(max(remaining, 0.001))
            if remaining is not None
            else contextlib.nullcontext()
        )

        def extend_deadline(seconds: float) -> None:
            """Durable waits slept here are not compute time: push the deadline back."""
            if isinstance(timeout_cm, asyncio.Timeout) and timeout_cm.when() is not None:
                timeout_cm.reschedule(timeout_cm.when() + seconds)  # type: ignore[operator]
            self.send(("extend", spec.run_id, seconds))

        async def suspend(waiting: list[str], compute_used: float) -> dict[str, Any]:
            reply: dict[str, Any] = await self.request_suspend(scope, waiting, compute_used)
            if (
                (reply.get("suspended") or reply.get("gone"))
                and attempt_task is not None
                and not attempt_task.done()
            ):
                self.cancel_reasons[attempt_task] = (
                    "suspended" if reply.get("suspended") else "canceled"
                )
                attempt_task.cancel()
            return reply

        attempt_task = asyncio.current_task()
        replay = Replay(spec, lambda call: self.call(scope, call), suspend, extend_deadline)
        scope.durable = replay
        scope.metadata = replay.metadata = RunMetadata(
            spec.metadata,
            spec.metadata_seq,
            lambda ops: replay.request(MetadataCall(ops)),
            self.loop,
            tags=spec.tags,
            position=lambda: replay.position,
            parent_id=spec.parent_id,
            root_id=spec.root_id,
        )
        ctxmod.enter_scope(scope)  # this asyncio task has its own context: no reset needed
        self.start_trace(spec, replay)
        try:
            payload = task.parse_payload(json.loads(spec.payload_json))
        except PayloadError as exc:
            return AttemptOutcome(
                spec.run_id,
                spec.attempt,
                "payload_invalid",
                error=error_dict(exc, "payload_invalid"),
            )
        if spec.run_on_start:
            await self.call_hook(task, "on_start", (payload, ctx), scope)

        async def wait_hook(name: str, wait: Wait) -> None:
            await self.call_hook(task, name, (payload, wait, ctx), scope)

        replay.wait_hook = wait_hook
        try:
            async with timeout_cm:
                args = (payload, ctx) if task.takes_ctx else (payload,)

                async def call() -> Any:
                    if task.is_async:
                        return await task.fn(*args)
                    return await self.loop.run_in_executor(
                        None, contextvars.copy_context().run, task.fn, *args
                    )

                output = await run_with_middleware(ctx, call)
            try:
                output_json = dumps(output, "output")
                if len(output_json) > MAX_PAYLOAD_BYTES:
                    raise PayloadError(
                        f"output is {len(output_json) / 1024**2:.1f} MB of JSON; the limit is "
                        f"{MAX_PAYLOAD_BYTES // 1024**2} MB: {MAX_PAYLOAD_HINT}"
                    )
                replay.check_complete()
            except PayloadError as exc:  # the same code returns the same kind of value: no retry
                return AttemptOutcome(
                    spec.run_id, spec.attempt, "aborted", error=error_dict(exc, "output_invalid")
                )
            except JournalMismatch as exc:
                return AttemptOutcome(
                    spec.run_id, spec.attempt, "aborted", error=error_dict(exc, "journal_mismatch")
                )
            return AttemptOutcome(spec.run_id, spec.attempt, "completed", output_json=output_json)
        except JournalMismatch as exc:
            return AttemptOutcome(
                spec.run_id, spec.attempt, "aborted", error=error_dict(exc, "journal_mismatch")
            )
        except AbortTaskRunError as exc:
            return AttemptOutcome(
                spec.run_id, spec.attempt, "aborted", error=error_dict(exc, "aborted")
            )
        except MemoryError as exc:  # past the address-space cap (conveyor/worker/machines.py)
            gigabytes = MACHINES.get(spec.machine, (0, 0))[1]
            error = error_dict(exc, "out_of_memory")
            error.update(
                name="OutOfMemory",
                message=f"The attempt ran out of memory: machine {spec.machine} has "
                f"{gigabytes * 1024:.0f} MB (MemoryError).",
            )
            return AttemptOutcome(spec.run_id, spec.attempt, "crashed", error=error)
        except TimeoutError as exc:
            if isinstance(timeout_cm, asyncio.Timeout) and timeout_cm.expired():
                if not task.is_async:
                    self.tainted = True  # its thread cannot be stopped; the supervisor replaces us
                return _past_max_duration(spec)
            # the code's own timeout (a network call's), not max_duration: an error like others
            return await self._raised(task, payload, exc, ctx, scope, spec, timeout_cm)
        except asyncio.CancelledError:
            return self._stopped(spec)
        except (PayloadError, InvalidRequest, TaskDefinitionError) as exc:
            # a Conveyor call used wrongly (a payload that is not JSON, a negative wait, ...): the
            # same code does it again on every attempt, so the run fails now instead of retrying
            return AttemptOutcome(
                spec.run_id, spec.attempt, "aborted", error=error_dict(exc, exc.code)
            )
        except Exception as exc:
            return await self._raised(task, payload, exc, ctx, scope, spec, timeout_cm)

    # -- OpenTelemetry ----------------------------------------------------------------------

    def start_trace(self, spec: AttemptSpec, replay: Replay) -> None:
        """The attempt's span, current in its context from here on (when telemetry is on)."""
        if self.telemetry is None:
            return
        try:
            trace = self.telemetry.attempt(spec, redact=self.variables.redact)
            trace.enter()
        except Exception as exc:
            _telemetry_problem(exc)
            return
        self.traces[spec.run_id] = replay.telemetry = trace

    def end_trace(self, spec: AttemptSpec, outcome: AttemptOutcome, reason: str | None) -> None:
        """End the attempt's span (and its run's, if the run ends with it), then send what is
        waiting off the event loop: a normal end is exported at once. A suspended attempt's
        span is not ended: the execution that finishes the attempt writes it."""
        trace = self.traces.pop(spec.run_id, None)
        if trace is None or self.telemetry is None:
            return
        try:
            if reason == "suspended":
                pass
            elif reason in ("canceled", "stale"):
                trace.end(None, final=reason == "canceled", canceled=reason == "canceled")
            else:
                trace.end(outcome, final=run_ends(outcome, spec))
        except Exception as exc:
            _telemetry_problem(exc)
        self.telemetry.flush_soon(lambda flush: self.loop.run_in_executor(None, flush))

    def _stopped(self, spec: AttemptSpec) -> AttemptOutcome:
        """The outcome of an attempt whose task was cancelled: past max_duration, or stopped."""
        reason = self.cancel_reasons.get(asyncio.current_task(), "canceled")  # type: ignore[arg-type]
        if reason == "timed_out":
            return _past_max_duration(spec)
        return AttemptOutcome(
            spec.run_id,
            spec.attempt,
            "crashed",
            error={
                "name": "Interrupted",
                "code": "crashed",
                "message": f"The attempt was stopped ({reason}).",
            },
        )

    async def _raised(
        self,
        task: Task,
        payload: Any,
        exc: BaseException,
        ctx: Any,
        scope: AttemptScope,
        spec: AttemptSpec,
        deadline: Any,
    ) -> AttemptOutcome:
        """The outcome of an attempt whose run function raised: what the task's catch_error
        decides (within what is left of max_duration, at most CATCH_ERROR_LIMIT seconds), or
        the retry policy. An error in catch_error, or an answer it cannot take, is logged."""
        limit = CATCH_ERROR_LIMIT
        if isinstance(deadline, asyncio.Timeout) and deadline.when() is not None:
            limit = min(limit, max(0.0, deadline.when() - self.loop.time()))  # type: ignore[operator]
        decision: CatchDecision | None = None
        try:
            async with asyncio.timeout(limit):
                decision = await task.caught(payload, exc, ctx)
        except asyncio.CancelledError:  # stopped meanwhile: as if in the run function
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                return self._stopped(spec)
            raise
        except AbortTaskRunError:
            decision = {"skip_retrying": True}
        except Exception as problem:
            what = "took too long" if isinstance(problem, TimeoutError) else f"failed: {problem}"
            scope.log(
                "error",
                f"catch_error {what}; the retry policy applies",
                {"stack": "".join(traceback.format_exception(problem))},
            )
        if decision is not None and decision.get("skip_retrying"):
            return AttemptOutcome(spec.run_id, spec.attempt, "aborted", error=error_dict(exc))
        return AttemptOutcome(
            spec.run_id,
            spec.attempt,
            "failed",
            error=error_dict(exc),
            retry_at=decision.get("retry_at") if decision is not None else None,
        )

    async def call_hook(
        self, task: Task, name: str, args: tuple[Any, ...], scope: AttemptScope
    ) -> None:
        """Run a lifecycle hook: the task's, then the project's (`conveyor.hooks`); an error in
        one is logged and changes nothing else."""
        await call_hooks(name, task.hooks_for(name), args, scope.log)

    def stalled(
        self, task: asyncio.Task[Any], seconds: float, stack: str, limit: float, send: Any
    ) -> None:
        """The watchdog found `task` holding the event loop (on the watchdog's thread, while the
        loop is blocked): send the supervisor the attempt's run id and the lines not flushed
        yet, with a line of the stalled attempt that shows its stack."""
        run_id = next((r for r, (t, _) in list(self.running.items()) if t is task), None)
        scope = self.scopes.get(run_id) if run_id is not None else None
        logs: list[LogEntry] = []
        if self._logs_lock.acquire(timeout=1.0):
            logs, self._logs = self._logs, []
            self._logs_lock.release()
        if scope is not None:
            frames = [
                line.strip() for line in stack.splitlines() if line.strip().startswith("File ")
            ]
            where = frames[-1] if frames else "an unknown place"
            message = (
                f"The attempt blocked its executor's event loop for {seconds:.0f}s, more than "
                f"stall_timeout ({limit:g}s), stalling every attempt of the process; the "
                f"executor is replaced and this attempt fails. Blocked at {where}. In an "
                "`async def`, use `await asyncio.sleep(...)` and `await asyncio.to_thread(...)` "
                "for blocking calls, or make the task a plain `def`."
            )
            logs.append(
                LogEntry(
                    scope.ctx.run.id,
                    scope.ctx.attempt.number,
                    scope.next_seq(),
                    time.time(),
                    "error",
                    message,
                    {"stack": stack},
                    scope.fence,
                )
            )
        send(("stalled", run_id, seconds, stack, logs))

    async def run_hook(self, job: HookJob) -> None:
        self.variables.apply(job.env)
        task = self.tasks.get(job.task_id)
        if task is not None:
            spec = AttemptSpec(
                run_id=job.run_id,
                task_id=job.task_id,
                attempt=max(job.attempt, 1),
                payload_json=job.payload_json,
                max_attempts=0,
                max_duration=None,
                machine=job.machine,
                tags=job.tags,
                metadata=job.metadata,
                queue="",
                concurrency_key=None,
                environment=job.environment,
                run_on_start=False,
            )
            ctx = self.context(spec, task)
            scope = AttemptScope(ctx, self, fence=job.fence)
            ctxmod.enter_scope(scope)
            try:
                payload: Any = task.parse_payload(json.loads(job.payload_json))
            except PayloadError:
                payload = json.loads(job.payload_json)
            output = json.loads(job.output_json) if job.output_json else None
            if job.hook == "on_success":
                await self.call_hook(task, "on_success", (payload, output, ctx), scope)
            elif job.hook == "on_failure":
                failure = RunFailure(job.status, job.error)
                await self.call_hook(task, "on_failure", (payload, failure, ctx), scope)
            else:
                await self.call_hook(task, "on_cancel", (payload, ctx), scope)
            if job.hook in ("on_success", "on_failure"):  # owed with them (engine/transitions.py)
                result = run_result(job.run_id, job.task_id, job.status, output, job.error)
                await self.call_hook(task, "on_complete", (payload, result, ctx), scope)
        self.flush_logs()
        self.send(("hook_done", job.run_id, job.hook, job.fence))


_MAX_REPR = 2000


def _past_max_duration(spec: AttemptSpec) -> AttemptOutcome:
    return AttemptOutcome(
        spec.run_id,
        spec.attempt,
        "timed_out",
        error={
            "name": "MaxDurationExceeded",
            "code": "timed_out",
            "message": f"The attempt ran longer than its max_duration of {spec.max_duration:g}s.",
        },
    )


def _jsonable(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    out = {}
    for key, value in attributes.items():
        name = as_text(str(key))
        try:
            out[name] = to_json_value(value, name, 1)
        except PayloadError:  # not JSON, too deep, not Unicode: shown as its repr
            out[name] = as_text(repr(value))[:_MAX_REPR]
    return out


_told_telemetry_problem = False


def _telemetry_problem(exc: BaseException) -> None:
    """An export that failed: said once on stderr (the worker's console), never the run's."""
    global _told_telemetry_problem
    if not _told_telemetry_problem:
        _told_telemetry_problem = True
        print(f"conveyor: OpenTelemetry export failed: {exc!r}", file=sys.__stderr__)


def _rebuild_error(data: dict[str, Any]) -> BaseException:
    from conveyor import errors

    cls = getattr(errors, data.get("type", ""), None)
    if isinstance(cls, type) and issubclass(cls, ConveyorError):
        return cls(data.get("message"))
    return ConveyorError(data.get("message"))


async def serve(
    sock: socket.socket,
    root: str,
    environment: str,
    machine: str,
    cpu: str = "",
    watch_fd: int | None = None,
) -> None:
    channel = await Channel.open(sock)
    try:
        config = load_config(root)
        found = load_tasks(config)  # a module that fails is reported; the others' tasks still run
        tasks = found.tasks
        manifest = [t.model_dump(mode="json") for t in definitions(tasks, config, environment)]
        failures = [f.model_dump(mode="json") for f in found.failures]
    except Exception as exc:
        message = exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        channel.send(("load_error", message))
        await channel.drain()
        return
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=64, thread_name_prefix="conveyor-sync")
    )
    executor = Executor(channel, tasks, environment, start_telemetry(config))
    if watch_fd is not None:
        send, limit = pipe_sender(watch_fd), config.stall_timeout
        Watchdog(
            loop,
            limit,
            lambda task, seconds, stack: executor.stalled(task, seconds, stack, limit, send),
        ).start()
    reader = loop.create_task(executor.read_forever())
    flusher = loop.create_task(executor.flush_forever())
    executor.send(("ready", manifest, os.getpid(), cpu, failures))
    await executor.stopped.wait()
    # finish what runs (the supervisor drains us after a reload); it kills us if that takes too long
    while executor.running:
        await asyncio.gather(
            *(task for task, _ in list(executor.running.values())), return_exceptions=True
        )
    flusher.cancel()
    reader.cancel()
    executor.flush_logs()
    await channel.drain()
    if executor.telemetry is not None:
        await loop.run_in_executor(None, executor.telemetry.shutdown)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the supervisor dies: an executor must never run task code
    for a worker that is gone (its results could not be recorded, and the run is retried)."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed socket still stops us
        pass
    if os.getppid() != parent:  # the supervisor died before we asked
        os._exit(3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="conveyor-executor")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--environment", default="dev")
    parser.add_argument("--machine", default="small-1x")
    parser.add_argument("--watch-fd", type=int, default=None)  # the watchdog's pipe
    args = parser.parse_args(argv)
    die_with_parent()
    cpu = apply_machine(args.machine)
    sock = socket.socket(fileno=args.fd)
    install_capture()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    use_fast_event_loop()
    asyncio.run(serve(sock, args.root, args.environment, args.machine, cpu, args.watch_fd))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
