"""The process-wide client behind `conveyor.tasks` and `conveyor.runs` (docs/triggering.md).

    from conveyor import tasks, runs
    handle = await tasks.trigger("my-task", {"url": "..."})
    run = await runs.poll(handle.id)

`default_client()` creates an AsyncClient on first use from `resolve_settings()` (never at
import: importing conveyor must not need a key). httpx connections belong to the event loop
that opened them, so there is one client per running loop; clients of closed loops are
dropped. Task code calls `default_client()` to trigger from outside a run.

`tasks`, `runs` and `queues` are the AsyncClient's namespaces over a sender that finds the
default client at each call, so they have exactly its operations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from conveyor.client._async import AsyncClient
from conveyor.client._auth import Auth
from conveyor.client._calls import Plan
from conveyor.client._namespaces import AsyncSender, Queues, Runs, Tasks
from conveyor.client._realtime import Subscription

T = TypeVar("T")

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


class DefaultSender(AsyncSender):
    """Carries each plan out with the default client of the running loop."""

    async def run(self, plan: Plan[T]) -> T:
        return await default_client()._sender.run(plan)

    async def events(self, sub: Subscription) -> AsyncIterator[Any]:
        async for item in default_client()._sender.events(sub):
            yield item


tasks = Tasks(DefaultSender())
"""`conveyor.tasks`: `client.tasks` of the default client."""
runs = Runs(DefaultSender())
"""`conveyor.runs`: `client.runs` of the default client."""
queues = Queues(DefaultSender())
"""`conveyor.client.default.queues`: `client.queues` of the default client."""
auth = Auth(DefaultSender())
"""`conveyor.auth`: `client.auth` of the default client (public access tokens)."""
