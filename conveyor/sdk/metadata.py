"""`metadata`, `tags` and `streams`: what a run tells the outside while it runs (docs/realtime.md).

    from conveyor import metadata, tags, streams

    metadata.set("progress", 0.4)            # the run's own metadata, seen by subscribers
    metadata.increment("done", 1)
    metadata.append("files", "a.mp3")
    metadata.parent.increment("done", 1)     # the run that triggered this one
    metadata.root.set("stage", "merging")    # the run at the top of the tree
    await metadata.flush()                   # also flushed by itself, soon after a change,
                                             # before every wait and at the end of the attempt
    await tags.add("user-42")
    text = "".join(await streams.pipe("llm", tokens))   # chunks stored in order, delivered live

Changes apply at once to the run's own copy (`metadata.get`, `metadata.current`) and reach the
platform in batches. Each op is numbered in the order the run's code makes it, so a replay of
the run (which makes them again) applies none twice: an increment counts once. The metadata of
a run is at most 256 KB of JSON.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

from conveyor.errors import ConveyorError, InvalidRequest, PayloadError
from conveyor.metadata_ops import add_tag, apply_op, metadata_json
from conveyor.protocol import MetadataOp, MetadataTarget
from conveyor.sdk.context import current_scope
from conveyor.serialization import to_json_value

FLUSH_AFTER = 0.05  # seconds from a change to its flush (changes in between go together)
SEGMENT = 1_000_000  # ops numbered per position among the durable calls (see RunMetadata.op)


class RunMetadata:
    """The metadata of one attempt in progress: its own copy, the ops not sent yet, and their
    flush. The executor makes one per attempt (`scope.metadata`); task code reaches it through
    `metadata`. Safe to use from the thread of a plain `def` task."""

    def __init__(
        self,
        initial: dict[str, Any],
        applied: int,
        send: Callable[[list[MetadataOp]], Awaitable[Any]],
        loop: asyncio.AbstractEventLoop,
        *,
        tags: list[str] | None = None,
        position: Callable[[], int] = lambda: 0,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> None:
        self.values = copy.deepcopy(initial)
        self.tags = list(tags or [])
        self._applied = applied  # ops up to this number were applied before (a replay)
        # an op's number: where the code is among its durable calls (the replay's position),
        # then its count since that position changed
        self._position = position
        self._at = -1
        self._count = 0
        self._own = {"self", *(["parent"] if parent_id is None else [])}
        if root_id is None:  # a run nothing triggered is its own parent and root
            self._own.add("root")
        self._pending: list[MetadataOp] = []
        self._send = send
        self._loop = loop
        self._lock = threading.Lock()
        self._flushing = asyncio.Lock()
        self._scheduled = False
        self._failed: BaseException | None = None

    def op(self, target: MetadataTarget, op: str, key: str, value: Any = None) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"a metadata key is non-empty text, got {key!r}")
        value = to_json_value(value, f"the value of metadata key {key!r}")
        with self._lock:
            position = self._position()
            if position != self._at:
                self._at, self._count = position, 0
            self._count += 1
            seq = position * SEGMENT + self._count
            if seq <= self._applied:
                return  # made before this replay and applied then
            if op == "tag":
                add_tag(self.tags, value)
            elif target in self._own:
                changed = dict(self.values)
                if op in ("append", "remove") and isinstance(changed.get(key), list):
                    changed[key] = list(changed[key])
                apply_op(changed, op, key, value)
                try:  # over the limit: refused here, not later
                    metadata_json(changed, "this run")
                except PayloadError as exc:
                    raise PayloadError(f"metadata.{op}({key!r}, ...): {exc.message}") from None
                self.values = changed
            elif op in ("increment", "decrement"):  # checked here, applied by the platform
                apply_op({}, op, key, value)
            if op in ("set", "delete"):  # it replaces whatever is pending for the key
                self._pending = [
                    p for p in self._pending if (p.target, p.key) != (target, key) or p.op == "tag"
                ]
            self._pending.append(MetadataOp(seq, target, op, key, value))  # type: ignore[arg-type]
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._loop.call_soon_threadsafe(self._loop.call_later, FLUSH_AFTER, self._flush_soon)

    def _flush_soon(self) -> None:
        task = self._loop.create_task(self.flush(raise_failure=False))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def flush(self, *, raise_failure: bool = True) -> None:
        """Send the ops made so far. Ops the platform refused (over the size limit, say) are
        dropped, and the refusal is raised here, or by the next flush that may raise."""
        async with self._flushing:
            with self._lock:
                ops, self._pending = self._pending, []
                self._scheduled = False
            if ops:
                try:
                    answer = await self._send(ops)
                except (PayloadError, InvalidRequest) as exc:
                    self._failed = exc
                except BaseException:
                    with self._lock:  # not delivered: they go with the next flush
                        self._pending[:0] = ops
                    raise
                else:
                    refused = answer.get("refused") if isinstance(answer, dict) else None
                    if refused:  # the others were applied
                        self._failed = PayloadError("; ".join(refused))
            if raise_failure and self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed


def _run_metadata(what: str) -> RunMetadata:
    scope = current_scope()
    found = getattr(scope, "metadata", None) if scope is not None else None
    if not isinstance(found, RunMetadata):
        raise ConveyorError(
            f"{what} works inside a run; from a backend, use "
            "`runs.update_metadata(run_id, {...})`"
        )
    return found


class MetadataTargetApi:
    """Changes to one run's metadata: the run's own, its parent's or its root's."""

    def __init__(self, target: MetadataTarget) -> None:
        self._target: MetadataTarget = target

    def _op(self, op: str, key: str, value: Any = None) -> None:
        name = "metadata" if self._target == "self" else f"metadata.{self._target}"
        _run_metadata(f"{name}.{op}").op(self._target, op, key, value)

    def set(self, key: str, value: Any) -> None:
        """Set `key` to `value` (any JSON value)."""
        self._op("set", key, value)

    def increment(self, key: str, by: float = 1) -> None:
        """Add `by` to the number at `key` (0 if absent)."""
        self._op("increment", key, by)

    def decrement(self, key: str, by: float = 1) -> None:
        """Subtract `by` from the number at `key` (0 if absent)."""
        self._op("decrement", key, by)

    def append(self, key: str, value: Any) -> None:
        """Append `value` to the list at `key` (made if absent)."""
        self._op("append", key, value)

    def remove(self, key: str, value: Any) -> None:
        """Remove every item equal to `value` from the list at `key`."""
        self._op("remove", key, value)

    def delete(self, key: str) -> None:
        """Remove `key`."""
        self._op("delete", key)


class Metadata(MetadataTargetApi):
    """`conveyor.metadata`: the running run's metadata (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("self")
        self.parent = MetadataTargetApi("parent")
        self.root = MetadataTargetApi("root")

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key` in the run's own copy."""
        return copy.deepcopy(_run_metadata("metadata.get").values.get(key, default))

    def current(self) -> dict[str, Any]:
        """The whole metadata, as the run sees it (its changes included, flushed or not)."""
        return copy.deepcopy(_run_metadata("metadata.current").values)

    async def flush(self) -> None:
        """Send the changes made so far now; raises what the platform refused."""
        await _run_metadata("metadata.flush").flush()


class Tags:
    """`conveyor.tags`: tags added to the running run."""

    async def add(self, *tags: str) -> None:
        """Add tags to the run (at most 10 in all); subscribers to a tag see it from then on."""
        found = _run_metadata("tags.add")
        for tag in tags:
            found.op("self", "tag", "tags", tag)
        await found.flush()


class Streams:
    """`conveyor.streams`: streams of chunks a run writes as it goes (an LLM's tokens)."""

    async def pipe(self, name: str, source: AsyncIterable[Any] | Iterable[Any]) -> list[Any]:
        """Store each item of `source` (text or any JSON value) as the next chunk of the run's
        stream `name`, delivered live to `runs.stream(run_id, name)`; returns the chunks. Made
        once per run: a replay returns the chunks without iterating `source` again."""
        scope = current_scope()
        durable = scope.durable if scope is not None else None
        if durable is None:
            raise ConveyorError("streams.pipe works inside a run")
        return await durable.stream(name, source)


metadata = Metadata()
tags = Tags()
streams = Streams()
