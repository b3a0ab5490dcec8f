"""What a worker owes the engine: its attempts' log lines, their outcomes and the hooks that
ran, kept until the engine has them.

A flush sends log lines first (so a finished run's lines are there when it shows as done), then
outcomes, then hook reports. Each part fails on its own: what the server refuses is dropped,
found by halving the batch until the refused items are alone (one bad line never holds back a
result, a heartbeat or another run's lines); what could not be sent because the server or its
database is away is kept for the next flush (the engine ignores duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.errors import ApiError, ConveyorError, StoreUnavailable
from conveyor.protocol import AttemptOutcome, LogEntry
from conveyor.worker.link import WorkerLink

log = logging.getLogger("conveyor.worker")

MAX_BUFFERED_LOGS = 200_000  # log lines kept while the server is unreachable
_TRANSIENT = ("unreachable", "timeout", "unavailable", "rate_limited")

Hook = tuple[str, str, int]  # (run id, hook, fence of the hook job)


class Outbox:
    def __init__(
        self,
        link: WorkerLink,
        worker_id: str,
        *,
        link_failed: Callable[[Exception], None],
        reporter: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.link = link
        self.worker_id = worker_id
        self._link_failed = link_failed
        self._reporter = reporter
        self.logs: list[LogEntry] = []
        self.outcomes: list[AttemptOutcome] = []
        self.sending: list[AttemptOutcome] = []  # outcomes of the flush under way
        self.hooks: list[Hook] = []
        self.ready = asyncio.Event()  # something was added: the flush loop sends it
        self._lock = asyncio.Lock()

    def add_logs(self, entries: list[LogEntry]) -> None:
        self.logs.extend(entries)
        self.ready.set()

    def add_outcome(self, outcome: AttemptOutcome) -> None:
        self.outcomes.append(outcome)
        self.ready.set()

    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)
        self.ready.set()

    @property
    def empty(self) -> bool:
        return not (self.logs or self.outcomes or self.hooks or self.sending)

    def unacknowledged(self) -> list[tuple[str, int]]:
        """(run id, fence) of attempts that ended but whose outcome the engine has not taken yet:
        still ours to the engine."""
        return [(o.run_id, o.fence) for o in (*self.outcomes, *self.sending)]

    async def flush(self) -> bool:
        """Send everything (see the module); False when something was kept for later. One flush
        at a time (the flush loop's, a suspend's, a stop's)."""
        async with self._lock:
            logs, self.logs = self.logs, []
            outcomes, self.outcomes = self.outcomes, []
            hooks, self.hooks = self.hooks, []
            self.sending = outcomes
            try:
                if not await self._send_logs(logs):
                    self.outcomes[:0], self.hooks[:0] = outcomes, hooks
                    return False
                unsent = await self._send_refusing(
                    outcomes,
                    lambda batch: self.link.complete(self.worker_id, batch),
                    "attempt outcome",
                )
                if unsent is not None:
                    self.outcomes[:0], self.hooks[:0] = unsent, hooks
                    return False
                unsent_hooks = await self._send_refusing(hooks, self._send_hooks, "hook report")
                if unsent_hooks is not None:
                    self.hooks[:0] = unsent_hooks
                    return False
                return True
            finally:
                self.sending = []

    async def flush_logs_of(self, run_id: str) -> None:
        """Send one run's lines now (before it suspends: once it resumes elsewhere, lines of this
        segment would be stale)."""
        mine = [e for e in self.logs if e.run_id == run_id]
        if mine:
            self.logs = [e for e in self.logs if e.run_id != run_id]
            await self._send_logs(mine)

    async def _send_hooks(self, hooks: list[Hook]) -> None:
        for run_id, hook, fence in hooks:
            await self.link.hook_done(run_id, hook, fence)

    async def _send_logs(self, logs: list[LogEntry]) -> bool:
        left = await self._send_refusing(logs, self.link.append_logs, "log line")
        if left is None:
            return True
        self._keep_logs(left)
        return False

    def _keep_logs(self, logs: list[LogEntry]) -> None:
        """Keep unsent lines for the next flush, up to MAX_BUFFERED_LOGS: past it the oldest are
        dropped (with a warning) rather than the worker's memory."""
        self.logs[:0] = logs
        excess = len(self.logs) - MAX_BUFFERED_LOGS
        if excess > 0:
            del self.logs[:excess]
            log.warning("the server has been unreachable too long: %d log lines dropped", excess)

    async def _send_refusing(
        self, items: list[Any], send: Callable[[list[Any]], Awaitable[None]], what: str
    ) -> list[Any] | None:
        """Send `items` as one batch; None once everything was sent or dropped, or the items
        still to send when the server or its database cannot be reached. A batch the server
        refuses (a 4xx, or an error of ours) is halved until the items it refuses are alone;
        those are dropped and reported: retrying them could never succeed."""
        if not items:
            return None
        try:
            await send(items)
            return None
        except (StoreUnavailable, OSError) as exc:
            self._link_failed(exc)
            return items
        except ApiError as exc:
            if exc.api_code in _TRANSIENT:
                self._link_failed(exc)
                return items
            refused: Exception = exc
        except ConveyorError as exc:
            refused = exc
        except Exception as exc:  # a bug of ours in the engine (in-process): retrying cannot help
            log.exception("sending %d %ss failed", len(items), what)
            refused = exc
        if len(items) == 1:
            run_id = (
                items[0][0] if isinstance(items[0], tuple) else getattr(items[0], "run_id", None)
            )
            log.warning(
                "the server refused a %s of run %s and it was dropped: %s", what, run_id, refused
            )
            self._reporter("dropped", {"what": what, "run_id": run_id, "error": str(refused)})
            return None
        half = len(items) // 2
        first = await self._send_refusing(items[:half], send, what)
        if first is not None:
            return first + items[half:]
        return await self._send_refusing(items[half:], send, what)
