"""`AsyncClient`: the API over httpx.AsyncClient, for async backends and the default client.

Its operations are those of `_namespaces`, written once for both clients; this module only
carries their plans out, awaiting (`HttpxSender`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from conveyor.client import _calls as calls
from conveyor.client._alerts import Alerts
from conveyor.client._auth import Auth
from conveyor.client._envvars import EnvVars
from conveyor.client._namespaces import (
    AsyncSender,
    IdempotencyKeys,
    Namespace,
    Queues,
    Runs,
    Tasks,
    UsageReports,
    Waitpoints,
)
from conveyor.client._projects import Deployments, Projects
from conveyor.client._realtime import MAX_RECONNECTS, RECONNECT_AFTER, SseParser, Subscription
from conveyor.client._schedules import Schedules
from conveyor.client.settings import resolve_settings

T = TypeVar("T")


class AsyncClient(Namespace["HttpxSender"]):
    """The Conveyor API, asynchronously: `await client.trigger("my-task", {...})`.

    `api_url` and `secret_key` default to CONVEYOR_API_URL / CONVEYOR_SECRET_KEY, then to the
    nearest `.conveyor/dev.json` (written by `conveyor dev`). Close it with `await aclose()`
    or use it as `async with AsyncClient() as client:`."""

    trigger = Tasks.trigger
    batch_trigger = Tasks.batch_trigger

    def __init__(
        self,
        api_url: str | None = None,
        secret_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url, key = resolve_settings(api_url, secret_key)
        http = httpx.AsyncClient(
            base_url=self.api_url, headers=calls.headers(key), timeout=timeout, transport=transport
        )
        super().__init__(HttpxSender(self.api_url, http))
        self.tasks = Tasks(self._sender)
        self.runs = Runs(self._sender)
        self.queues = Queues(self._sender)
        self.usage = UsageReports(self._sender)
        self.waitpoints = Waitpoints(self._sender)
        self.projects = Projects(self._sender)
        self.deployments = Deployments(self._sender)
        self.schedules = Schedules(self._sender)
        self.envvars = EnvVars(self._sender)
        self.alerts = Alerts(self._sender)
        self.idempotency_keys = IdempotencyKeys(self._sender)
        self.auth = Auth(self._sender)

    def __repr__(self) -> str:
        return f"<AsyncClient {self.api_url}>"

    async def send(self, call: calls.Call[T]) -> T:
        """Send one call and read its answer (the lower level every method goes through). A call
        refused for the key's rate limit (429) or a database outage (503) is sent again after
        the Retry-After the server gives, a few times (`calls.retry_delay`)."""
        return await self._sender.run(calls.exchange(call))

    @property
    def is_closed(self) -> bool:
        return self._sender.http.is_closed

    async def aclose(self) -> None:
        await self._sender.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class HttpxSender(AsyncSender):
    """Sends a client's requests with an httpx.AsyncClient."""

    def __init__(self, api_url: str, http: httpx.AsyncClient) -> None:
        self.api_url = api_url
        self.http = http

    async def request(self, call: calls.Call[Any]) -> calls.Answer:
        try:
            response = await self.http.request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.body,
                timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
            )
        except httpx.TimeoutException as exc:
            raise calls.timed_out(self.api_url, call, exc) from exc
        except httpx.TransportError as exc:
            raise calls.unreachable(self.api_url, exc) from exc
        return calls.Answer(
            response.status_code, response.content, response.headers.get("retry-after")
        )

    async def events(self, sub: Subscription) -> AsyncIterator[Any]:
        """The items of a server-sent event stream, reconnecting with `Last-Event-ID` when the
        connection drops, until its `end` event."""
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with self.http.stream(
                    "GET",
                    sub.path,
                    params=sub.params or None,
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=None),
                ) as response:
                    if response.status_code >= 400:
                        content = await response.aread()
                        raise calls.error_from_response(response.status_code, content)
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures = 0
                        if event.id is not None:
                            last_id = event.id
                        if event.event == "end":
                            return
                        if event.event == sub.item:
                            yield event.data
            except httpx.TransportError as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise calls.unreachable(self.api_url, exc) from exc
            await asyncio.sleep(RECONNECT_AFTER)  # the server went away: resume where it stopped
