"""Replay: the durable calls of one attempt, answered from the journal or made for real.

Every durable call gets a key: its kind and name plus an occurrence counter for that pair
(`step:charge-card#2`, `trigger_and_wait:resize#1`, `wait.for#3`). A run resumed after a
suspension or a crash runs its function again from the top; calls whose key is journaled are
answered at once, without repeating their effect. New calls go to the engine, which journals
them in the same transaction as their effect.

The attempt suspends (WAITING: no slot, no process) once it is blocked only on durable waits:
waitpoints pending, no durable call in flight, no step running, nothing else changing for a
moment. Duration waits of at most SHORT_WAIT seconds are slept in the process instead.

Around each wait that really waits it calls the task's `on_wait` hooks, and `on_resume` once the
code goes on after it: in the same execution, or in the one that resumes the run (the journal
marks the waits a resumed run was suspended on).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.errors import AbortTaskRunError, ConveyorError, PayloadError
from conveyor.protocol import (
    AttemptSpec,
    CompleteTokenCall,
    CreateTokenCall,
    DurableCall,
    JournalCall,
    JournalEntry,
    StreamCall,
    TriggerCall,
    TriggerItem,
    WaitTokenCall,
    WaitUntilCall,
)
from conveyor.sdk.hooks import Wait
from conveyor.sdk.idempotency import scoped
from conveyor.serialization import to_json_value

if TYPE_CHECKING:
    from conveyor.telemetry import AttemptTrace

SHORT_WAIT = 5.0  # seconds: shorter duration waits keep the process, longer ones suspend
SETTLE = 0.02  # seconds of no change before a blocked attempt suspends
STREAM_BATCH = 64  # chunks of a stream sent together at most
STREAM_EVERY = 0.05  # seconds: a stream's chunks are sent at least this often


class JournalMismatch(ConveyorError):
    """The run's code no longer makes the durable calls its journal recorded."""

    code = "journal_mismatch"


class Suspended(Exception):
    """The attempt was suspended; its task is canceled with this as the reason."""


def describe(key: str) -> str:
    """A journal key as a person reads it: `step 'charge-card' (#2)`."""
    head, _, occurrence = key.rpartition("#")
    kind, _, name = head.partition(":")
    kind = kind.replace("_", " ").replace(".", " ")
    return f"{kind} {name!r} (#{occurrence})" if name else f"{kind} (#{occurrence})"


class Replay:
    """The durable side of one attempt execution. The SDK reaches it as `scope.durable`."""

    def __init__(
        self,
        spec: AttemptSpec,
        call: Callable[[DurableCall], Awaitable[Any]],
        on_suspend: Callable[[list[str], float], Awaitable[dict[str, Any]]],
        extend_deadline: Callable[[float], None],
    ) -> None:
        self.spec = spec
        self._call = call
        self._on_suspend = on_suspend
        self._extend_deadline = extend_deadline
        self.journal: dict[str, JournalEntry] = {e.key: e for e in spec.journal}
        self.metadata: Any = None  # the attempt's RunMetadata, flushed before waits
        # where the code is among its durable calls: one more at each call and at the end of a
        # step's body, whether the body runs or is answered from the journal. Metadata ops are
        # numbered from it (conveyor/sdk/metadata.py), so ops a journaled step does not make
        # again leave the numbers of the ops after it as they were.
        self.position = 0
        self.used: set[str] = set()
        self._replayed = 0  # journal entries this execution has come to again
        self._past_journal = False
        self._counters: Counter[tuple[str, str]] = Counter()
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.busy = 0
        self._version = 0
        self._suspending = False
        self._closed = False
        self.segment_started = time.monotonic()
        self.slept = 0.0  # seconds of durable waits slept in the process: not compute time
        self.loop = asyncio.get_running_loop()
        # calls the task's hooks of a wait ("on_wait", "on_resume"); set by the executor
        self.wait_hook: Callable[[str, Wait], Awaitable[None]] | None = None
        # the waits the run was suspended on: on_resume fires when the code comes to them again
        self._woke = {e.waitpoint_id for e in spec.journal if e.suspended_on and spec.resumed}
        # the attempt's OpenTelemetry spans (conveyor/telemetry.py), when they are exported:
        # a call made for real gets a span, one answered from the journal none
        self.telemetry: AttemptTrace | None = None

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        """A span around a durable call made now (nothing when telemetry is off)."""
        if self.telemetry is None:
            return contextlib.nullcontext()
        return self.telemetry.span(name, {f"conveyor.{k}": v for k, v in attributes.items()})

    # -- keys and the journal -----------------------------------------------------------------

    def key(self, kind: str, name: str = "") -> str:
        self.position += 1
        self._counters[(kind, name)] += 1
        n = self._counters[(kind, name)]
        key = f"{kind}:{name}#{n}" if name else f"{kind}#{n}"
        if key in self.journal and key not in self.used:
            self._replayed += 1
        elif key not in self.journal:
            self._past_journal = True  # a call the journal never saw: this is new code running
        self.used.add(key)
        return key

    @property
    def replaying(self) -> bool:
        """A resumed attempt re-running what it did before it was suspended: its log lines were
        already written then, so they are not written twice."""
        return self.spec.resumed and not self._past_journal and self._replayed < len(self.journal)

    def recorded(self, key: str) -> JournalEntry | None:
        return self.journal.get(key)

    def unused_keys(self) -> list[str]:
        return [k for k in self.journal if k not in self.used]

    def check_complete(self) -> None:
        """At the end of a run: every journaled call must have been made again."""
        unused = self.unused_keys()
        if unused:
            calls = ", ".join(describe(k) for k in unused[:5])
            raise JournalMismatch(
                f"journal mismatch: this run already made {calls}, but its code no longer makes "
                f"{'that call' if len(unused) == 1 else 'those calls'}. The code changed while the "
                "run was in flight; finish or cancel runs in flight before changing their durable "
                "calls, then replay them."
            )

    def compute_used(self) -> float:
        return self.spec.compute_used + (time.monotonic() - self.segment_started) - self.slept

    # -- talking to the engine ------------------------------------------------------------------

    def _check_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self.loop:  # the same code fails the same way: an abort, not retried
            raise AbortTaskRunError(
                "durable calls (step, wait, trigger_and_wait, tokens, triggers) need an "
                "`async def` task; this one is a plain `def` running in a thread"
            )

    async def request(self, call: DurableCall) -> Any:
        self._check_loop()
        self.busy += 1
        self._changed()
        try:
            return await self._call(call)
        finally:
            self.busy -= 1
            self._changed()

    # -- the durable calls ----------------------------------------------------------------------

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._check_loop()
        key = self.key("step", name)
        entry = self.recorded(key)
        if entry is not None and entry.value_json is not None:
            self.position += 1  # the end of the body, not run again
            return json.loads(entry.value_json)
        self.busy += 1
        started_at = time.time()  # the journal keeps when the step began, for the run's trace
        try:
            with self.span(f"step {name}", step=name, journal_key=key):
                try:
                    value = fn(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
                finally:
                    self.position += 1  # the end of the body
                try:
                    encoded = to_json_value(value, f"step {name!r} result")
                except PayloadError as exc:
                    raise PayloadError(
                        f"{exc.message}: a step's result is journaled, so it must be JSON"
                    ) from exc
                return await self._call(JournalCall(key, encoded, started_at=started_at))
        finally:
            self.busy -= 1
            self._changed()

    async def remembered(self, kind: str, make: Callable[[], Any]) -> Any:
        """A value made once per run and journaled (step.now, step.uuid)."""
        key = self.key(kind)
        entry = self.recorded(key)
        if entry is not None and entry.value_json is not None:
            return json.loads(entry.value_json)
        return await self.request(JournalCall(key, make()))

    async def trigger(
        self,
        kind: str,
        name: str,
        items: list[tuple[str, Any, dict[str, Any]]],
        *,
        wait: bool,
        batch: bool,
        idempotency_key: str | None = None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]:
        """Trigger children once per run; with `wait`, wait for them and return the waitpoint
        result. A retry of the run triggers again the children that failed in an earlier
        attempt (a journaled success is replayed, a journaled failure runs again). A batch's
        `idempotency_key` (scoped by the SDK) goes with the call: the engine answers the batch
        holding it."""
        key = self.key(kind, name)
        entry = self.recorded(key)
        again = wait and entry is not None and self._failed_in_earlier_attempt(entry)
        if entry is not None and not again:
            return await self._triggered(_answer(entry), wait, batch)
        tasks = sorted({item[0] for item in items})
        with self.span(
            f"{kind} {name}" if name else kind,
            journal_key=key,
            trigger_task=tasks[0] if len(tasks) == 1 else None,
            trigger_tasks=tasks if len(tasks) > 1 else None,
            trigger_count=len(items),
            trigger_wait=wait,
        ) as span:
            if self.telemetry is not None:  # the children continue this trace, under this span
                context = self.telemetry.current_context()
                if context is not None:
                    items = [
                        (t, p, o if "trace_context" in o else {**o, "trace_context": context})
                        for t, p, o in items
                    ]
            call = TriggerCall(
                key,
                [TriggerItem(*item) for item in items],
                wait,
                batch,
                again,
                idempotency_key,
                idempotency_key_ttl,
            )
            answer = await self.request(call)
            if span is not None:
                runs = [r["id"] for r in answer.get("runs", [])]
                span.set_attribute("conveyor.trigger.run_ids", runs)
                if answer.get("batch_id"):
                    span.set_attribute("conveyor.batch.id", answer["batch_id"])
            return await self._triggered(answer, wait, batch)

    async def _triggered(self, answer: dict[str, Any], wait: bool, batch: bool) -> dict[str, Any]:
        if wait:
            if batch:
                what = Wait("batch", answer.get("batch_id") or answer["waitpoint"]["id"])
            else:
                what = Wait("run", answer["runs"][0]["id"])
            answer["result"] = await self.wait_for(answer["waitpoint"], what)
        return answer

    def _failed_in_earlier_attempt(self, entry: JournalEntry) -> bool:
        """Whether a journaled trigger's children include one that failed, and an attempt before
        this one made it (an attempt resuming replays its own answers as they are)."""
        if entry.attempt is None or entry.attempt >= self.spec.attempt:
            return False
        if entry.waitpoint_status != "COMPLETED" or entry.waitpoint_result_json is None:
            return False
        result = json.loads(entry.waitpoint_result_json)
        children = result.get("runs", []) if entry.waitpoint_kind == "batch" else [result]
        return any(not child.get("ok") for child in children)

    async def sleep_until(self, kind: str, until: float, seconds: float | None = None) -> None:
        key = self.key(kind)
        entry = self.recorded(key)
        if entry is not None:
            await self._slept(_answer(entry), kind, until)
            return
        with self.span(kind, journal_key=key, wait_until=until, wait_seconds=seconds):
            await self._slept(await self.request(WaitUntilCall(key, until, seconds)), kind, until)

    async def _slept(self, answer: dict[str, Any], kind: str, until: float) -> None:
        waitpoint = answer["waitpoint"]
        end = waitpoint.get("complete_at") or until  # the journaled end, on a replay
        what = Wait(
            "duration" if kind == "wait.for" else "date",
            waitpoint["id"],
            datetime.fromtimestamp(end, UTC),
        )
        await self.wait_for(waitpoint, what)

    async def create_token(
        self,
        timeout: float | None,
        idempotency_key: str | None,
        tags: list[str] | None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]:
        key = self.key("token.create")
        if idempotency_key is not None:  # plain text is this run's key (sdk/idempotency.py)
            idempotency_key = str(scoped(idempotency_key))
        call = CreateTokenCall(key, timeout, idempotency_key, tags, idempotency_key_ttl)
        if self.recorded(key) is not None:  # the engine answers it from the journal
            answer: dict[str, Any] = await self.request(call)
            return answer
        with self.span("token.create", journal_key=key, token_timeout=timeout) as span:
            answer = await self.request(call)
            if span is not None and isinstance(answer, dict) and answer.get("id"):
                span.set_attribute("conveyor.token.id", str(answer["id"]))
            return answer

    async def wait_token(self, token_id: str) -> dict[str, Any]:
        key = self.key("token.wait")
        entry = self.recorded(key)
        if entry is not None:
            return await self._token_result(_answer(entry), token_id)
        with self.span("wait.for_token", journal_key=key, token_id=token_id):
            answer = await self.request(WaitTokenCall(key, token_id))
            return await self._token_result(answer, token_id)

    async def _token_result(self, answer: dict[str, Any], token_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.wait_for(answer["waitpoint"], Wait("token", token_id))
        return result

    async def complete_token(self, token_id: str, data: Any) -> None:
        key = self.key("token.complete")
        if self.recorded(key) is not None:
            return
        with self.span("token.complete", journal_key=key, token_id=token_id):
            await self.request(CompleteTokenCall(key, token_id, data))

    async def stream(self, name: str, source: Any) -> list[Any]:
        """Send each item of `source` as the next chunk of the run's stream `name`, then journal
        the chunks: a replay returns them without iterating again. A sender beside the source
        sends what came, in batches of up to STREAM_BATCH, at most every STREAM_EVERY seconds:
        a chunk is sent within that time even when the source pauses after it (a model calling
        a tool), and a slow platform never holds the source back."""
        self._check_loop()
        key = self.key("stream", name)
        entry = self.recorded(key)
        if entry is not None and entry.value_json is not None:
            return list(json.loads(entry.value_json))
        chunks: list[Any] = []
        came = asyncio.Event()
        ended = False

        async def sender() -> None:
            sent, last = 0, -STREAM_EVERY
            while True:
                if sent == len(chunks) and not ended:
                    await came.wait()
                    came.clear()
                    continue
                if len(chunks) - sent < STREAM_BATCH and not ended:  # a moment for more
                    await asyncio.sleep(max(0.0, last + STREAM_EVERY - time.monotonic()))
                upto = min(len(chunks), sent + STREAM_BATCH)
                done = ended and upto == len(chunks)
                last = time.monotonic()
                await self.request(StreamCall(name, sent, chunks[sent:upto], done))
                sent = upto
                if done:
                    return

        async def items() -> Any:
            if hasattr(source, "__aiter__"):
                async for item in source:
                    yield item
            else:
                for item in source:
                    yield item

        sending = asyncio.ensure_future(sender())
        try:
            async for item in items():
                if sending.done():  # the platform refused a batch: the stream stops here
                    break
                chunks.append(to_json_value(item, f"chunk {len(chunks)} of stream {name!r}"))
                came.set()
            ended = True
            came.set()
            await sending
        finally:
            if not sending.done():  # the source raised: nothing more to send
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
        recorded = await self.request(JournalCall(key, chunks))
        return list(recorded)

    # -- waiting and suspending -----------------------------------------------------------------

    async def wait_for(self, waitpoint: dict[str, Any], wait: Wait | None = None) -> Any:
        """The result of a waitpoint: at once if it completed, else after it does (the run's
        metadata changes are sent first: a wait is a moment subscribers see). `wait` describes
        it to the task's on_wait and on_resume hooks."""
        self._check_loop()
        if waitpoint["status"] != "PENDING":
            if waitpoint["id"] in self._woke:  # the wait this run was suspended on
                self._woke.discard(waitpoint["id"])
                await self._wait_hook("on_resume", wait)
            return waitpoint["result"]
        await self.flush_metadata()
        if waitpoint["kind"] == "duration" and waitpoint["complete_at"] is not None:
            # the engine's count when it answered; a journaled answer has only its end, read
            # against this machine's clock
            remaining = waitpoint.get("remaining", waitpoint["complete_at"] - time.time())
            if remaining <= 0:
                return {"ok": True}
            if remaining <= SHORT_WAIT:
                began = time.monotonic()
                await self._wait_hook("on_wait", wait)
                remaining = max(0.0, remaining - (time.monotonic() - began))
                self._extend_deadline(remaining)  # before the sleep: a wait is never compute time
                self.slept += remaining
                await asyncio.sleep(remaining)
                await self._wait_hook("on_resume", wait)
                return {"ok": True}
        await self._wait_hook("on_wait", wait)
        future = self.pending.get(waitpoint["id"])
        if future is None:
            future = self.pending[waitpoint["id"]] = self.loop.create_future()
        self._changed()
        try:
            result = await asyncio.shield(future)
        finally:
            self._changed()
        await self._wait_hook("on_resume", wait)  # not reached when the attempt is suspended
        return result

    async def _wait_hook(self, name: str, wait: Wait | None) -> None:
        """The task's hooks of a wait; the attempt does not suspend while they run."""
        if self.wait_hook is None or wait is None:
            return
        self.busy += 1
        try:
            await self.wait_hook(name, wait)
        finally:
            self.busy -= 1
            self._changed()

    def close(self) -> None:
        """The attempt ended (or was suspended): this replay decides nothing more."""
        self._closed = True
        self.pending.clear()

    def _changed(self) -> None:
        if self._closed:
            return
        self._version += 1
        version = self._version
        self.loop.call_later(SETTLE, self._maybe_suspend, version)

    def _maybe_suspend(self, version: int) -> None:
        if version != self._version or self._suspending or self.busy or self._closed:
            return
        waiting = [wid for wid, fut in self.pending.items() if not fut.done()]
        if not waiting:
            return
        self._suspending = True
        task = self.loop.create_task(self._suspend(waiting))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def flush_metadata(self) -> None:
        """Send the run's pending metadata changes, if it has any (`metadata` is the attempt's
        RunMetadata, set by the executor)."""
        if self.metadata is not None:
            await self.metadata.flush(raise_failure=False)

    async def _suspend(self, waiting: list[str]) -> None:
        try:
            await self.flush_metadata()
            reply = await self._on_suspend(waiting, self.compute_used())
        finally:
            self._suspending = False
        for waitpoint_id, state in (reply.get("results") or {}).items():
            future = self.pending.pop(waitpoint_id, None)
            if future is not None and not future.done():
                future.set_result(state["result"])


def _answer(entry: JournalEntry) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(entry.value_json) if entry.value_json else {}
    if entry.waitpoint_id:
        answer["waitpoint"] = {
            "id": entry.waitpoint_id,
            "kind": entry.waitpoint_kind,
            "status": entry.waitpoint_status,
            "complete_at": entry.complete_at,
            "result": json.loads(entry.waitpoint_result_json)
            if entry.waitpoint_result_json
            else None,
        }
    return answer


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_uuid() -> str:
    return str(uuid.uuid4())
