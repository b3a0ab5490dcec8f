"""How a supervisor reaches the engine: the worker protocol as async calls.

`LocalLink` calls an in-process Engine (what `conveyor dev` uses), moving each call off the
event loop because the store is synchronous. A remote worker uses the same interface over HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from conveyor.engine.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import TaskDefinition
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

    async def suspend(self, worker_id: str, run_id: str, attempt: int, waitpoints: list[str],
                      compute_used: float) -> dict[str, Any]: ...

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

    async def suspend(self, worker_id: str, run_id: str, attempt: int, waitpoints: list[str],
                      compute_used: float) -> dict[str, Any]:
        return await asyncio.to_thread(self.engine.suspend, worker_id, run_id, attempt, waitpoints, compute_used)

    def _call(self, run_id: str, op: str, args: dict[str, Any]) -> Any:
        """A durable call made by a run (see conveyor.worker.replay)."""
        engine = self.engine
        if op == "journal":
            return engine.journal_put(run_id, args["key"], args["value"])
        if op == "durable_trigger":
            return engine.durable_trigger(run_id, args["key"], [tuple(i) for i in args["items"]],
                                          wait=args["wait"], batch=args["batch"])
        if op == "wait_until":
            return engine.wait_until(run_id, args["key"], args["until"])
        if op == "create_token":
            return engine.create_token(self.env_id, timeout=args["timeout"], idempotency_key=args["idempotency_key"],
                                       tags=args["tags"], run_id=run_id, key=args["key"])
        if op == "wait_token":
            return engine.wait_token(run_id, args["key"], args["token_id"])
        if op == "complete_token":
            engine.complete_token(self.env_id, args["token_id"], args["data"])
            return engine.journal_put(run_id, args["key"], {})
        raise InvalidRequest(f"unknown call {op!r}")
