"""The process-wide client behind `conveyor.tasks` and `conveyor.runs` (DESIGN 1.3).

    from conveyor import tasks, runs
    handle = await tasks.trigger("my-task", {"url": "..."})
    run = await runs.poll(handle.id)

`default_client()` creates an AsyncClient on first use from `resolve_settings()` (never at
import: importing conveyor must not need a key). httpx connections belong to the event loop
that opened them, so there is one client per running loop; clients of closed loops are
dropped. Task code calls `default_client()` to trigger from outside a run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from conveyor.client._async import AsyncClient
from conveyor.client._calls import UNSET, RunPage
from conveyor.models import LogLine, QueueInfo, Run, RunStatus, TaskDefinition, TriggerOptions
from conveyor.results import BatchHandle, RunHandle

_lock = threading.Lock()
_clients: dict[asyncio.AbstractEventLoop, AsyncClient] = {}
_settings: dict[str, str | None] = {"api_url": None, "secret_key": None}


def configure(*, api_url: str | None = None, secret_key: str | None = None) -> None:
    """Set the default client's server and key in code (instead of the environment).
    Clients made before are dropped, so the next call uses the new settings."""
    with _lock:
        _settings.update(api_url=api_url, secret_key=secret_key)
        _clients.clear()


def default_client() -> AsyncClient:
    """The AsyncClient of the running event loop, created on first use. Outside a running
    loop a fresh client is returned each time: there is no loop to keep it for."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return AsyncClient(_settings["api_url"], _settings["secret_key"])
    with _lock:
        for old in [old for old in _clients if old.is_closed()]:
            # its loop is gone, so its connections cannot be closed politely; let them go
            del _clients[old]
        client = _clients.get(loop)
        if client is None or client.is_closed:  # closed by its user: the next call gets a new one
            client = _clients[loop] = AsyncClient(_settings["api_url"], _settings["secret_key"])
        return client


class DefaultTasks:
    """`conveyor.tasks`: `client.tasks` of the default client."""

    async def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Start a run of `task_id`; options as keywords (`tags=["a"]`) or as `options=`."""
        return await default_client().tasks.trigger(task_id, payload, options=options, **kwargs)

    async def batch_trigger(self, task_id: str, items: Iterable[Mapping[str, Any]]) -> BatchHandle:
        """Start one run per `{"payload": ..., "options": {...}}`, 1 to 1,000, all or none."""
        return await default_client().tasks.batch_trigger(task_id, items)

    async def retrieve(self, task_id: str) -> TaskDefinition:
        return await default_client().tasks.retrieve(task_id)

    async def list(self) -> list[TaskDefinition]:
        return await default_client().tasks.list()


class DefaultRuns:
    """`conveyor.runs`: `client.runs` of the default client."""

    async def retrieve(self, run_id: str) -> Run:
        return await default_client().runs.retrieve(run_id)

    async def cancel(self, run_id: str) -> Run:
        return await default_client().runs.cancel(run_id)

    async def replay(self, run_id: str, payload: Any = UNSET) -> RunHandle:
        return await default_client().runs.replay(run_id, payload)

    async def logs(self, run_id: str) -> list[LogLine]:
        return await default_client().runs.logs(run_id)

    async def poll(self, run_id: str, interval: float = 0.5, timeout: float | None = None) -> Run:
        """The run once it has ended; TimeoutError after `timeout` seconds."""
        return await default_client().runs.poll(run_id, interval=interval, timeout=timeout)

    async def list(
        self,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_from: datetime | str | float | None = None,
        created_to: datetime | str | float | None = None,
        roots: bool = False,
    ) -> RunPage:
        return await default_client().runs.list(
            status=status,
            task=task,
            tag=tag,
            limit=limit,
            cursor=cursor,
            created_from=created_from,
            created_to=created_to,
        )


class DefaultQueues:
    """`conveyor.client.default.queues`: `client.queues` of the default client."""

    async def retrieve(self, name: str) -> QueueInfo:
        return await default_client().queues.retrieve(name)

    async def pause(self, name: str) -> QueueInfo:
        return await default_client().queues.pause(name)

    async def resume(self, name: str) -> QueueInfo:
        return await default_client().queues.resume(name)

    async def set_concurrency(self, name: str, limit: int | None) -> QueueInfo:
        return await default_client().queues.set_concurrency(name, limit)

    async def list(self) -> list[QueueInfo]:
        return await default_client().queues.list()


tasks = DefaultTasks()
runs = DefaultRuns()
queues = DefaultQueues()
