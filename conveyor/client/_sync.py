"""`Client`: the API over HTTP for synchronous code (Django, Flask, scripts, the CLI).

Its operations are those of `_namespaces`, written once for both clients; this module only
carries their plans out, blocking (`UrllibSender`).

The connections are urllib3's: a backend triggering runs one at a time spends the HTTP
client's time on the path from trigger to start, and a call costs about 0.4 ms in urllib3
against 0.9 ms in httpx's Client (bench/RESULTS.md, "Where the ... go"). Proxies come from
the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) as they would with httpx.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import urllib3

from conveyor.client import _calls as calls
from conveyor.client._alerts import Alerts
from conveyor.client._auth import Auth
from conveyor.client._envvars import EnvVars
from conveyor.client._namespaces import (
    IdempotencyKeys,
    Namespace,
    Queues,
    Runs,
    Sender,
    Tasks,
    UsageReports,
    Waitpoints,
)
from conveyor.client._projects import Deployments, Projects
from conveyor.client._realtime import (
    MAX_RECONNECTS,
    RECONNECT_AFTER,
    SseParser,
    Subscription,
    lines,
)
from conveyor.client._schedules import Schedules
from conveyor.client.settings import resolve_settings

T = TypeVar("T")


class Client(Namespace["UrllibSender"]):
    """The Conveyor API, synchronously: `client.trigger("my-task", {...})`.

    `api_url` and `secret_key` default to CONVEYOR_API_URL / CONVEYOR_SECRET_KEY, then to the
    nearest `.conveyor/dev.json` (written by `conveyor dev`). Close it with `close()`
    or use it as `with Client() as client:`."""

    trigger = Tasks.trigger
    batch_trigger = Tasks.batch_trigger

    def __init__(
        self, api_url: str | None = None, secret_key: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.api_url, key = resolve_settings(api_url, secret_key)
        super().__init__(UrllibSender(self.api_url, key, timeout))
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
        return f"<Client {self.api_url}>"

    def send(self, call: calls.Call[T]) -> T:
        """Send one call and read its answer (the lower level every method goes through). A call
        refused for the key's rate limit (429) or a database outage (503) is sent again after
        the Retry-After the server gives, a few times (`calls.retry_delay`)."""
        return self._sender.run(calls.exchange(call))

    @property
    def is_closed(self) -> bool:
        return self._sender.closed

    def close(self) -> None:
        self._sender.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class UrllibSender(Sender):
    """Sends a client's requests over pooled urllib3 connections."""

    def __init__(self, api_url: str, secret_key: str, timeout: float) -> None:
        self.api_url = api_url
        self.headers = calls.headers(secret_key)
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.pool = _pool_for(api_url, timeout)
        self.closed = False

    def request(self, call: calls.Call[Any]) -> calls.Answer:
        if self.closed:
            raise RuntimeError("the client is closed")
        url = self.api_url + call.path + (f"?{urlencode(call.params)}" if call.params else "")
        body = (
            None
            if call.body is None
            else json.dumps(
                call.body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        )
        headers = self.headers if body is None else self.json_headers
        options: dict[str, Any] = {} if call.timeout is None else {"timeout": call.timeout}
        try:
            response = self.pool.request(call.method, url, body=body, headers=headers, **options)
        except urllib3.exceptions.ReadTimeoutError as exc:  # sent, but no answer in time
            raise calls.timed_out(self.api_url, call, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise calls.unreachable(self.api_url, exc) from exc
        return calls.Answer(response.status, response.data, response.headers.get("retry-after"))

    def events(self, sub: Subscription) -> Iterator[Any]:
        """The items of a server-sent event stream, reconnecting with `Last-Event-ID` when the
        connection drops, until its `end` event."""
        last_id: str | None = None
        failures = 0
        url = self.api_url + sub.path + (f"?{urlencode(sub.params)}" if sub.params else "")
        while True:
            headers = {**self.headers, "Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                response = self.pool.request(
                    "GET",
                    url,
                    headers=headers,
                    preload_content=False,
                    timeout=urllib3.Timeout(connect=30.0, read=None),
                )
                try:
                    if response.status >= 400:
                        raise calls.error_from_response(response.status, response.read())
                    parser = SseParser()
                    for line in lines(response.stream(4096)):
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
                finally:
                    response.release_conn()
            except urllib3.exceptions.HTTPError as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise calls.unreachable(self.api_url, exc) from exc
            time.sleep(RECONNECT_AFTER)  # the server went away: resume where it stopped

    def close(self) -> None:
        self.closed = True
        self.pool.clear()


def _pool_for(api_url: str, timeout: float) -> urllib3.PoolManager:
    """Pooled keep-alive connections to the server, through the environment's proxy if it names
    one for this host. urllib3 retries nothing itself: `send` decides what is sent again."""
    options: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": 10,
        "retries": False,
        "timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
    }
    parts = urlsplit(api_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)
