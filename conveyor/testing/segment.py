"""One execution of a test run's function: the SDK's `scope.durable` (sdk/context.py Durable).

Durable calls are keyed as on the platform (worker/replay.py): kind and name plus an occurrence
counter. A call whose key the run's journal holds is answered from it without its effect; a new
call goes to the world (memory.py), which journals it. A segment blocked only on waitpoints is
suspended by the world: its function is canceled, and the run runs again from the top later.
Around a wait that really waits it calls the task's on_wait and on_resume hooks, as the
executor does: on_resume of a wait the run was suspended on runs in the segment that resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.errors import AbortTaskRunError, PayloadError
from conveyor.sdk.hooks import Wait
from conveyor.serialization import to_json_value
from conveyor.testing.records import RunState, Waitpoint, as_stored
from conveyor.worker.replay import SHORT_WAIT, JournalMismatch, describe

if TYPE_CHECKING:
    from conveyor.testing.memory import World


class Segment:
    """The durable calls of one execution of a run's function (the SDK's `scope.durable`): the
    journal's answers first, then the world's. Keys as in worker/replay.py."""

    def __init__(
        self, world: World, run: RunState, resumed: bool, woke: list[str] | None = None
    ) -> None:
        self.world = world
        self.run = run
        self.resumed = resumed
        self.woke = set(woke or ())  # the waits the previous segment was suspended on
        self.wait_hook: Callable[[str, Wait], Awaitable[None]] | None = None
        self.loop = asyncio.get_running_loop()
        self._counters: Counter[tuple[str, str]] = Counter()
        self.used: set[str] = set()
        self._replayed = 0
        self._past_journal = False
        self.busy = 0
        self.pending: Counter[str] = Counter()  # waitpoints that suspend the run
        self.sleeping: Counter[str] = Counter()  # short waits, slept in the process
        self.suspended_on: list[str] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.started = time.monotonic()
        self.position = 0  # among the durable calls, as worker/replay.py counts it

    # -- keys and the journal (the same rules as worker/replay.py) -----------------------------

    def key(self, kind: str, name: str = "") -> str:
        self.position += 1
        self._counters[(kind, name)] += 1
        n = self._counters[(kind, name)]
        key = f"{kind}:{name}#{n}" if name else f"{kind}#{n}"
        if key in self.run.journal and key not in self.used:
            self._replayed += 1
        elif key not in self.run.journal:
            self._past_journal = True
        self.used.add(key)
        return key

    @property
    def replaying(self) -> bool:
        return self.resumed and not self._past_journal and self._replayed < len(self.run.journal)

    def check_complete(self) -> None:
        unused = [k for k in self.run.journal if k not in self.used]
        if unused:
            calls = ", ".join(describe(k) for k in unused[:5])
            raise JournalMismatch(
                f"journal mismatch: this run already made {calls}, but its code no longer makes "
                f"{'that call' if len(unused) == 1 else 'those calls'} when it runs again. Code "
                "outside steps must make the same durable calls on every replay."
            )

    def _check_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self.loop:
            raise AbortTaskRunError(
                "durable calls (step, wait, trigger_and_wait, tokens, triggers) need an "
                "`async def` task; this one is a plain `def` running in a thread"
            )

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        self._check_loop()
        self.busy += 1
        self.world.changed()
        try:
            yield
        finally:
            self.busy -= 1
            self.world.changed()

    # -- the durable calls (sdk/context.py Durable) --------------------------------------------

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._check_loop()
        key = self.key("step", name)
        entry = self.run.journal.get(key)
        if entry is not None:
            self.position += 1  # the end of the body, not run again
            return copy.deepcopy(entry.value)
        with self._busy():
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
            return self.world.journal(self.run, key, as_stored(encoded))

    async def remembered(self, kind: str, make: Callable[[], Any]) -> Any:
        with self._busy():
            key = self.key(kind)
            entry = self.run.journal.get(key)
            if entry is not None:
                return copy.deepcopy(entry.value)
            value = self.world.moment().isoformat() if kind == "now" else make()
            return self.world.journal(self.run, key, as_stored(value))

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
        with self._busy():
            key = self.key(kind, name)
            entry = self.run.journal.get(key)
            again = (
                wait
                and entry is not None
                and entry.attempt is not None
                and entry.attempt < self.run.attempt
                and entry.failed_children(before=self.run.attempt_started_at)
            )
            if entry is None or again:  # a retry triggers the failed children again
                entry = self.world.children.trigger(
                    self.run,
                    key,
                    items,
                    wait=wait,
                    batch=batch,
                    again=entry if again else None,
                    idempotency_key=idempotency_key,
                    idempotency_key_ttl=idempotency_key_ttl,
                )
            answer: dict[str, Any] = copy.deepcopy(entry.value)
        if wait:
            assert entry.waitpoint is not None
            what = (
                Wait("batch", answer["batch_id"]) if batch else Wait("run", answer["runs"][0]["id"])
            )
            answer["result"] = await self.wait_for(entry.waitpoint, what)
        return answer

    async def sleep_until(self, kind: str, until: float, seconds: float | None = None) -> None:
        with self._busy():
            key = self.key(kind)
            entry = self.run.journal.get(key) or self.world.wait_until(
                self.run, key, until, seconds
            )
        waitpoint = entry.waitpoint
        assert waitpoint is not None
        end = datetime.fromtimestamp(waitpoint.complete_at or until, UTC)
        await self.wait_for(
            waitpoint, Wait("duration" if kind == "wait.for" else "date", waitpoint.id, end)
        )

    async def create_token(
        self,
        timeout: float | None,
        idempotency_key: str | None,
        tags: list[str] | None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]:
        with self._busy():
            key = self.key("token.create")
            waitpoint = self.world.tokens.create(
                self.run, key, timeout, idempotency_key, tags, idempotency_key_ttl
            )
            return waitpoint.token().model_dump(mode="json")

    async def wait_token(self, token_id: str) -> dict[str, Any]:
        with self._busy():
            key = self.key("token.wait")
            entry = self.run.journal.get(key) or self.world.tokens.wait(self.run, key, token_id)
        assert entry.waitpoint is not None
        result: dict[str, Any] = await self.wait_for(entry.waitpoint, Wait("token", token_id))
        return result

    async def complete_token(self, token_id: str, data: Any) -> None:
        with self._busy():
            key = self.key("token.complete")
            if key in self.run.journal:
                return
            self.world.tokens.complete(token_id, data)
            self.world.journal(self.run, key, {})

    async def stream(self, name: str, source: Any) -> list[Any]:
        """The chunks of `source`, kept as the run's stream `name` (`result.streams`)."""
        with self._busy():
            key = self.key("stream", name)
            entry = self.run.journal.get(key)
            if entry is not None:
                return list(copy.deepcopy(entry.value))
            chunks = self.run.streams.setdefault(name, [])
            if hasattr(source, "__aiter__"):
                async for item in source:
                    chunks.append(to_json_value(item, f"chunk {len(chunks)} of stream {name!r}"))
            else:
                for item in source:
                    chunks.append(to_json_value(item, f"chunk {len(chunks)} of stream {name!r}"))
            return list(self.world.journal(self.run, key, as_stored(list(chunks))))

    # -- waiting and suspending ------------------------------------------------------------

    async def wait_for(self, waitpoint: Waitpoint, wait: Wait | None = None) -> Any:
        self._check_loop()
        if waitpoint.status != "PENDING":
            if waitpoint.id in self.woke:  # the wait the run was suspended on
                self.woke.discard(waitpoint.id)
                await self._wait_hook("on_resume", wait)
            return copy.deepcopy(waitpoint.result)
        await self._wait_hook("on_wait", wait)
        short = (
            waitpoint.kind == "duration"
            and waitpoint.complete_at is not None
            and waitpoint.complete_at - self.world.now <= SHORT_WAIT
        )
        waiting = self.sleeping if short else self.pending
        waiting[waitpoint.id] += 1
        self.world.changed()
        try:
            await waitpoint.done.wait()
        finally:
            waiting[waitpoint.id] -= 1
            if waiting[waitpoint.id] <= 0:
                del waiting[waitpoint.id]
            self.world.changed()
        await self._wait_hook("on_resume", wait)  # not reached when the segment is suspended
        return copy.deepcopy(waitpoint.result)

    async def _wait_hook(self, name: str, wait: Wait | None) -> None:
        if self.wait_hook is not None and wait is not None:
            with self._busy():  # not suspended while its hooks run
                await self.wait_hook(name, wait)

    def idle(self) -> bool:
        """Blocked only on waitpoints: nothing but the world can move it on."""
        return self.busy == 0 and bool(self.pending or self.sleeping) and not self.suspended_on

    def suspendable(self) -> bool:
        return self.busy == 0 and bool(self.pending) and self.suspended_on is None

    def suspend(self) -> bool:
        """Stop the function where it waits (as an executor does); the run goes on later, from
        the top, once every waitpoint it waits on has completed."""
        waiting = [w for w in self.pending if self.world.waitpoints[w].status == "PENDING"]
        if not waiting or self.task is None or self.task.done():
            return False
        self.suspended_on = waiting
        self.task.cancel()
        self.world.changed()
        return True

    def compute(self) -> float:
        return time.monotonic() - self.started
