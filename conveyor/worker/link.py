"""How a supervisor reaches the engine: the worker protocol as async calls (`WorkerLink`).

`HttpLink` sends the messages to a server (`conveyor worker`), through the client's one
definition of each call. The in-process link of `conveyor dev` is the platform's
(conveyor/platform/link.py): the worker never imports the engine.
"""

from __future__ import annotations

from typing import Any, Protocol

from conveyor.client import _calls as calls
from conveyor.models import DeploymentBundle, ModuleFailure, TaskDefinition
from conveyor.protocol import (
    AttemptOutcome,
    DurableCall,
    Heartbeat,
    HeartbeatReply,
    LeaseReply,
    LogEntry,
    MetadataOp,
)


class WorkerLink(Protocol):
    async def register(
        self, worker_id: str, name: str, tasks: list[TaskDefinition] | None, deployed: bool = False
    ) -> None: ...

    async def set_tasks(self, tasks: list[TaskDefinition]) -> None: ...

    async def set_load_failures(self, failures: list[ModuleFailure]) -> None: ...

    async def lease(self, worker_id: str, capacity: int) -> LeaseReply: ...

    async def heartbeat(self, worker_id: str, beat: Heartbeat) -> HeartbeatReply: ...

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None: ...

    async def hook_done(self, run_id: str, hook: str, fence: int) -> None: ...

    async def append_logs(self, entries: list[LogEntry]) -> None: ...

    async def call(self, run_id: str, fence: int, call: DurableCall) -> Any: ...

    async def metadata(self, flushes: list[tuple[str, int, list[MetadataOp]]]) -> list[Any]:
        """Metadata flushes of many runs, (run id, fence, ops) each, applied together: for
        each, its answer or the ConveyorError that refused it."""
        ...

    async def suspend(
        self,
        worker_id: str,
        run_id: str,
        attempt: int,
        fence: int,
        waitpoints: list[str],
        compute_used: float,
    ) -> dict[str, Any]: ...

    async def stopped(self, worker_id: str) -> None: ...


class HttpLink:
    """The worker protocol over HTTP, to a Conveyor server (`conveyor worker`). Leases are long
    polls: the server answers as soon as runs may start."""

    LEASE_WAIT = 20.0

    def __init__(self, api_url: str | None = None, secret_key: str | None = None) -> None:
        from conveyor.client import AsyncClient

        self.client = AsyncClient(api_url, secret_key, timeout=self.LEASE_WAIT + 30)
        # Heartbeats and the lease long poll each have a connection of their own: hundreds of
        # durable calls in flight fill the main client's pool, and a heartbeat queued behind
        # them would make a live worker look lost (and stop its own attempts).
        self.beats = AsyncClient(api_url, secret_key, timeout=self.LEASE_WAIT + 30)
        self.leases = AsyncClient(api_url, secret_key, timeout=self.LEASE_WAIT + 30)
        self.environment: str | None = None  # its kind: dev, staging, prod, preview
        self.slug: str | None = None
        self.env_id: str | None = None
        self.current_version: str | None = None
        self.heartbeat_interval = 5.0
        self.worker_timeout = 30.0

    async def register(
        self, worker_id: str, name: str, tasks: list[TaskDefinition] | None, deployed: bool = False
    ) -> None:
        reply = await self.client.send(calls.register_worker(worker_id, name, tasks, deployed))
        self.environment = reply.get("environment")
        self.slug = reply.get("slug") or self.environment
        self.env_id = reply.get("env_id")
        self.current_version = reply.get("current_version")
        self.heartbeat_interval = float(reply.get("heartbeat_interval") or 5.0)
        self.worker_timeout = float(reply.get("worker_timeout") or self.heartbeat_interval * 3)
        self.worker_id = worker_id

    async def set_tasks(self, tasks: list[TaskDefinition]) -> None:
        await self.client.send(calls.set_worker_tasks(self.worker_id, tasks))

    async def set_load_failures(self, failures: list[ModuleFailure]) -> None:
        """Not sent over HTTP: a remote worker's console reports the modules that failed."""

    async def lease(self, worker_id: str, capacity: int) -> LeaseReply:
        return await self.leases.send(
            calls.lease(worker_id, capacity, self.LEASE_WAIT if capacity else 0)
        )

    async def heartbeat(self, worker_id: str, beat: Heartbeat) -> HeartbeatReply:
        # not longer than the interval: a heartbeat that hangs must not delay the next one
        return await self.beats.send(
            calls.heartbeat(worker_id, beat, timeout=self.heartbeat_interval)
        )

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None:
        await self.client.send(calls.complete(worker_id, outcomes))

    async def hook_done(self, run_id: str, hook: str, fence: int) -> None:
        await self.client.send(calls.hooks_done(self.worker_id, [(run_id, hook, fence)]))

    async def append_logs(self, entries: list[LogEntry]) -> None:
        await self.client.send(calls.append_logs(self.worker_id, entries))

    async def call(self, run_id: str, fence: int, call: DurableCall) -> Any:
        return await self.client.send(calls.run_call(self.worker_id, run_id, fence, call))

    async def metadata(self, flushes: list[tuple[str, int, list[MetadataOp]]]) -> list[Any]:
        return await self.client.send(calls.metadata_flushes(self.worker_id, flushes))

    async def suspend(
        self,
        worker_id: str,
        run_id: str,
        attempt: int,
        fence: int,
        waitpoints: list[str],
        compute_used: float,
    ) -> dict[str, Any]:
        return await self.client.send(
            calls.suspend(worker_id, run_id, attempt, fence, waitpoints, compute_used)
        )

    async def stopped(self, worker_id: str) -> None:
        await self.client.send(calls.worker_stopped(worker_id))
        await self.close()

    async def close(self) -> None:
        for client in (self.client, self.beats, self.leases):
            await client.aclose()

    async def bundle(self, version: str) -> tuple[DeploymentBundle, bytes]:
        """A deployed version's bundle (for conveyor/worker/versions.py)."""
        return await self.client.deployments.bundle(version)
