"""How a supervisor reaches the engine: the worker protocol as async calls.

`LocalLink` calls an in-process Engine (what `conveyor dev` uses), moving each call off the
event loop because the store is synchronous. A remote worker uses the same interface over HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from conveyor.engine.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import TaskDefinition, TriggerOptions
from conveyor.protocol import AttemptOutcome, LeaseReply, LogEntry


class WorkerLink(Protocol):
    async def register(self, worker_id: str, name: str, tasks: list[TaskDefinition]) -> None: ...

    async def set_tasks(self, tasks: list[TaskDefinition]) -> None: ...

    async def lease(self, worker_id: str, capacity: int) -> LeaseReply: ...

    async def heartbeat(self, worker_id: str, running: list[str]) -> list[str]: ...

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None: ...

    async def hook_done(self, run_id: str, hook: str) -> None: ...

    async def append_logs(self, entries: list[LogEntry]) -> None: ...

    async def call(self, run_id: str, op: str, args: dict[str, Any]) -> Any: ...

    async def stopped(self, worker_id: str) -> None: ...


class LocalLink:
    """The worker protocol against an Engine in the same process."""

    def __init__(self, engine: Engine, env_id: str) -> None:
        self.engine = engine
        self.env_id = env_id

    async def register(self, worker_id: str, name: str, tasks: list[TaskDefinition]) -> None:
        await asyncio.to_thread(self.engine.register_worker, self.env_id, worker_id, name, tasks)

    async def set_tasks(self, tasks: list[TaskDefinition]) -> None:
        await asyncio.to_thread(self.engine.set_tasks, self.env_id, tasks)

    async def lease(self, worker_id: str, capacity: int) -> LeaseReply:
        return await asyncio.to_thread(self.engine.lease, self.env_id, worker_id, capacity)

    async def heartbeat(self, worker_id: str, running: list[str]) -> list[str]:
        return await asyncio.to_thread(self.engine.heartbeat, worker_id, running)

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None:
        await asyncio.to_thread(self.engine.complete, worker_id, outcomes)

    async def hook_done(self, run_id: str, hook: str) -> None:
        await asyncio.to_thread(self.engine.hook_done, run_id, hook)

    async def append_logs(self, entries: list[LogEntry]) -> None:
        await asyncio.to_thread(self.engine.append_logs, entries)

    async def stopped(self, worker_id: str) -> None:
        await asyncio.to_thread(self.engine.worker_stopped, worker_id)

    async def call(self, run_id: str, op: str, args: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self._call, run_id, op, args)

    def _call(self, run_id: str, op: str, args: dict[str, Any]) -> Any:
        if op in ("trigger", "batch_trigger"):
            items = [(task_id, payload, TriggerOptions.model_validate(options))
                     for task_id, payload, options in args["items"]]
            result = self.engine.batch_trigger(self.env_id, items, parent_id=run_id, record_batch=op == "batch_trigger")
            runs = [{"id": r.id, "is_cached": r.is_cached} for r in result.runs]
            return runs if op == "trigger" else {"batch_id": result.batch_id, "runs": runs}
        raise InvalidRequest(f"unknown call {op!r}")
