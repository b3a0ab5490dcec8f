"""The worker protocol against an Engine in the same process: what `conveyor dev` gives its
supervisor instead of conveyor/worker/link.py's `HttpLink`. Calls move off the event loop,
because the store is synchronous (all but the lease: see there). The one place a worker and
the engine meet, so it belongs to the assembly rather than to either.
"""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor.engine import Engine
from conveyor.errors import ConveyorError
from conveyor.models import ModuleFailure, TaskDefinition
from conveyor.protocol import (
    AttemptOutcome,
    DurableCall,
    Heartbeat,
    HeartbeatReply,
    LeaseReply,
    LogEntry,
    MetadataCall,
    MetadataOp,
    check_call,
)


class LocalLink:
    """The worker protocol against an Engine in the same process."""

    def __init__(self, engine: Engine, env_id: str) -> None:
        self.engine = engine
        self.env_id = env_id
        self.current_version: str | None = None
        self.worker_id = ""
        self.worker_timeout = engine.workers.timeout

    async def register(
        self, worker_id: str, name: str, tasks: list[TaskDefinition] | None, deployed: bool = False
    ) -> None:
        await asyncio.to_thread(
            self.engine.workers.register, self.env_id, worker_id, name, tasks, deployed=deployed
        )
        self.worker_id = worker_id
        self.current_version = await asyncio.to_thread(
            self.engine.deployments.current_version, self.env_id
        )

    async def set_tasks(self, tasks: list[TaskDefinition]) -> None:
        await asyncio.to_thread(self.engine.workers.set_tasks, self.env_id, tasks)

    async def set_load_failures(self, failures: list[ModuleFailure]) -> None:
        await asyncio.to_thread(self.engine.workers.set_load_failures, self.env_id, failures)

    async def lease(self, worker_id: str, capacity: int) -> LeaseReply:
        # on the event loop: a lease is a few hundred microseconds of SQLite work, less than a
        # thread hop costs, and it is on the path from a trigger to its start
        return self.engine.workers.lease(self.env_id, worker_id, capacity)

    async def heartbeat(self, worker_id: str, beat: Heartbeat) -> HeartbeatReply:
        return await asyncio.to_thread(self.engine.workers.heartbeat, worker_id, beat)

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None:
        await asyncio.to_thread(self.engine.workers.complete, worker_id, outcomes)

    async def hook_done(self, run_id: str, hook: str, fence: int) -> None:
        await asyncio.to_thread(self.engine.workers.hook_done, run_id, hook, fence)

    async def append_logs(self, entries: list[LogEntry]) -> None:
        await asyncio.to_thread(self.engine.workers.append_logs, entries)

    async def stopped(self, worker_id: str) -> None:
        await asyncio.to_thread(self.engine.workers.stopped, worker_id)

    async def call(self, run_id: str, fence: int, call: DurableCall) -> Any:
        # made by task code in an executor process and passed as it is: checked here as the
        # HTTP route checks what a remote worker sends
        return await asyncio.to_thread(
            self.engine.durable.call,
            self.env_id,
            run_id,
            check_call(call),
            worker_id=self.worker_id,
            fence=fence,
        )

    async def metadata(self, flushes: list[tuple[str, int, list[MetadataOp]]]) -> list[Any]:
        checked: list[tuple[str, int, list[MetadataOp]]] = []
        answers: list[Any] = []
        for run_id, fence, ops in flushes:  # checked as the HTTP route checks them
            try:
                call = check_call(MetadataCall(ops))
            except ConveyorError as exc:
                answers.append(exc)
                continue
            assert isinstance(call, MetadataCall)
            checked.append((run_id, fence, call.ops))
            answers.append(None)
        if not checked:
            return answers
        applied = iter(
            await asyncio.to_thread(
                self.engine.durable.metadata, self.env_id, self.worker_id, checked
            )
        )
        return [next(applied) if answer is None else answer for answer in answers]

    async def suspend(
        self,
        worker_id: str,
        run_id: str,
        attempt: int,
        fence: int,
        waitpoints: list[str],
        compute_used: float,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.engine.durable.suspend, worker_id, run_id, attempt, waitpoints, compute_used, fence
        )
