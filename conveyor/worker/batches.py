"""Calls that go to the engine together (group commit): metadata flushes of all the runs of a
worker, say. One batch is in flight at a time; what arrives meanwhile waits and goes in the
next, so a busy worker sends large batches and an idle one sends each call at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Send = Callable[[list[T]], Awaitable[list[object]]]


class Batches(Generic[T]):
    """`submit(item)` answers with what `send` answers for it in its batch: its result, or the
    exception in its place raised. An error of the whole batch is raised to each of its callers
    (they may submit again)."""

    def __init__(self, send: Send[T], limit: int = 500) -> None:
        self._send = send
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[object]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    def close(self) -> None:
        """Stop sending: every caller waiting is cancelled."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[object]]] = []
        try:
            while self._pending:
                batch = [(i, f) for i, f in self._pending[: self._limit] if not f.done()]
                del self._pending[: self._limit]
                if not batch:
                    continue
                try:
                    answers = await self._send([item for item, _ in batch])
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers to {len(batch)} calls")
                except Exception as exc:
                    answers = [exc] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # its caller stopped waiting
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        except asyncio.CancelledError:  # stopped (the worker shuts down): nobody waits forever
            for _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending.clear()
            raise
        finally:  # at once, not in a done callback: a call submitted next must start a drain
            if self._task is asyncio.current_task():
                self._task = None
