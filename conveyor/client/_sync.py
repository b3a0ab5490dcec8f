"""`Client`: the API over HTTP for synchronous code (Django, Flask, scripts, the CLI).

Every call is built and read by `conveyor.client._calls`; this module only sends it. Keep it
in step with `_async.py`, which offers the same surface asynchronously (over httpx).

The connections are urllib3's: a backend triggering runs one at a time spends the HTTP
client's time on the path from trigger to start, and a call costs about 0.4 ms in urllib3
against 0.9 ms in httpx's Client (bench/RESULTS.md, "Where the ... go"). Proxies come from
the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) as they would with httpx.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import urllib3

from conveyor.client import _calls as calls
from conveyor.client._calls import UNSET, DeploymentPage, Page, RunPage
from conveyor.client.settings import resolve_settings
from conveyor.models import (
    Deployment,
    DeploymentBundle,
    EnvironmentKey,
    LogLine,
    Project,
    ProjectEnvironment,
    QueueInfo,
    Run,
    RunStatus,
    TaskDefinition,
    Token,
    Trace,
    TriggerOptions,
    User,
)
from conveyor.results import BatchHandle, RunHandle

T = TypeVar("T")


class Client:
    """The Conveyor API, synchronously: `client.trigger("my-task", {...})`.

    `api_url` and `secret_key` default to CONVEYOR_API_URL / CONVEYOR_SECRET_KEY, then to the
    nearest `.conveyor/dev.json` (written by `conveyor dev`). Close it with `close()`
    or use it as `with Client() as client:`."""

    def __init__(
        self, api_url: str | None = None, secret_key: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.api_url, key = resolve_settings(api_url, secret_key)
        self._headers = calls.headers(key)
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._http = _pool_for(self.api_url, timeout)
        self._closed = False
        self.tasks = Tasks(self)
        self.runs = Runs(self)
        self.queues = Queues(self)
        self.waitpoints = Waitpoints(self)
        self.projects = Projects(self)
        self.deployments = Deployments(self)

    def __repr__(self) -> str:
        return f"<Client {self.api_url}>"

    def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Start a run of `task_id`; the same as `client.tasks.trigger`."""
        return self.tasks.trigger(task_id, payload, options=options, **kwargs)

    def batch_trigger(self, task_id: str, items: Iterable[Mapping[str, Any]]) -> BatchHandle:
        """Start one run per `{"payload": ..., "options": {...}}`; the same as `client.tasks.batch_trigger`."""
        return self.tasks.batch_trigger(task_id, items)

    def send(self, call: calls.Call[T]) -> T:
        """Send one call and read its answer (the lower level every method goes through). A call
        refused for the key's rate limit (429) or a database outage (503) is sent again after
        the Retry-After the server gives, a few times (`calls.retry_delay`)."""
        if self._closed:
            raise RuntimeError("the client is closed")
        url = self.api_url + call.path + (f"?{urlencode(call.params)}" if call.params else "")
        body = (
            None
            if call.body is None
            else json.dumps(
                call.body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        )
        headers = self._headers if body is None else self._json_headers
        retries = 0
        while True:
            try:
                response = self._http.request(call.method, url, body=body, headers=headers)
            except urllib3.exceptions.ReadTimeoutError as exc:  # sent, but no answer in time
                raise calls.timed_out(self.api_url, call, exc) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise calls.unreachable(self.api_url, exc) from exc
            delay = calls.retry_delay(response.status, response.headers.get("retry-after"), retries)
            if delay is None:
                return calls.read_response(call, response.status, response.data)
            retries += 1
            time.sleep(delay)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._http.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Tasks:
    """`client.tasks`: trigger tasks and read their definitions."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Start a run of `task_id` with `payload` (JSON; pydantic models and datetimes are
        converted). Options go as keywords (`tags=["a"]`, `delay="1h"`) or as `options=`."""
        return self._client.send(
            calls.trigger(task_id, payload, calls.merge_options(options, kwargs))
        )

    def batch_trigger(self, task_id: str, items: Iterable[Mapping[str, Any]]) -> BatchHandle:
        """Start one run per item (`{"payload": ..., "options": {...}}`), 1 to 1,000, all or none."""
        return self._client.send(calls.batch_trigger(task_id, items))

    def list(self) -> list[TaskDefinition]:
        return self._client.send(calls.list_tasks())

    def retrieve(self, task_id: str) -> TaskDefinition:
        return self._client.send(calls.retrieve_task(task_id))


class Runs:
    """`client.runs`: read, list, cancel, replay and wait for runs."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def retrieve(self, run_id: str) -> Run:
        """The run with its attempt count and finished attempts (`attempt_list`)."""
        return self._client.send(calls.retrieve_run(run_id))

    def cancel(self, run_id: str) -> Run:
        """Cancel a run that has not ended; Conflict if it has."""
        return self._client.send(calls.cancel_run(run_id))

    def replay(self, run_id: str, payload: Any = UNSET) -> RunHandle:
        """A new run of the same task and options, with the same payload unless `payload` is given."""
        return self._client.send(calls.replay_run(run_id, payload))

    def logs(self, run_id: str) -> list[LogLine]:
        return self._client.send(calls.run_logs(run_id))

    def trace(self, run_id: str) -> Trace:
        """The run's spans as a tree: attempts, and the steps, triggers, waits and tokens of each."""
        return self._client.send(calls.run_trace(run_id))

    def poll(self, run_id: str, interval: float = 0.5, timeout: float | None = None) -> Run:
        """The run once it has ended (any final status); TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.retrieve(run_id)
            delay = calls.poll_delay(run, interval, deadline, time.monotonic(), timeout)
            if delay is None:
                return run
            time.sleep(delay)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(
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
        """One page of runs, newest first; pass `page.next_cursor` as `cursor` for the next. With
        `roots=True`, only the runs no other run triggered (each run's `child_count` says how many
        it triggered)."""
        return self._client.send(
            calls.list_runs(
                status=status,
                task=task,
                tag=tag,
                limit=limit,
                cursor=cursor,
                created_from=created_from,
                created_to=created_to,
                roots=roots,
            )
        )


class Queues:
    """`client.queues`: list queues, pause and resume them, change their limit."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[QueueInfo]:
        return self._client.send(calls.list_queues())

    def retrieve(self, name: str) -> QueueInfo:
        return self._client.send(calls.retrieve_queue(name))

    def pause(self, name: str) -> QueueInfo:
        """No new run of the queue starts until it is resumed."""
        return self._client.send(calls.pause_queue(name))

    def resume(self, name: str) -> QueueInfo:
        return self._client.send(calls.resume_queue(name))

    def set_concurrency(self, name: str, limit: int | None) -> QueueInfo:
        """Override the queue's concurrency limit; None clears the override (the code's limit applies again)."""
        return self._client.send(calls.set_queue_concurrency(name, limit))


class Waitpoints:
    """Waitpoint tokens: `client.waitpoints.create_token(...)`, `.complete_token(id, data)`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create_token(
        self,
        *,
        timeout: float | str | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
    ) -> Token:
        return self._client.send(
            calls.create_token(timeout=timeout, idempotency_key=idempotency_key, tags=tags)
        )

    def complete_token(self, token_id: str, data: Any = None) -> Token:
        """Complete a token; every run waiting on it resumes with `data` as the output."""
        return self._client.send(calls.complete_token(token_id, data))

    def retrieve_token(self, token_id: str) -> Token:
        return self._client.send(calls.retrieve_token(token_id))

    def list_tokens(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Token]:
        """One page of tokens, newest first; pass `page.next_cursor` as `cursor` for the next."""
        return self._client.send(calls.list_tokens(status=status, limit=limit, cursor=cursor))


class Projects:
    """`client.projects`: projects, their environments and keys. These calls need a personal
    access token (cv_pat_...) as the client's key, not an environment's key."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def whoami(self) -> User:
        """The user of the token and their organizations."""
        return self._client.send(calls.whoami())

    def create(
        self, name: str, *, slug: str | None = None, organization: str | None = None
    ) -> Project:
        """A project with its dev, staging and prod environments; Conflict if the slug is taken."""
        return self._client.send(calls.create_project(name, slug=slug, organization=organization))

    def retrieve(self, ref: str) -> Project:
        """A project by ref (proj_...) or slug."""
        return self._client.send(calls.retrieve_project(ref))

    def environments(self, ref: str) -> list[ProjectEnvironment]:
        return self._client.send(calls.list_environments(ref))

    def preview_environment(self, ref: str, branch: str) -> ProjectEnvironment:
        """The preview environment of a git branch, made if it does not exist yet."""
        return self._client.send(calls.preview_environment(ref, branch))

    def key(self, ref: str, env: str) -> EnvironmentKey:
        """The secret key of environment `env` (dev, staging, prod or preview-<branch>)."""
        return self._client.send(calls.environment_key(ref, env))

    def rotate_key(self, ref: str, env: str) -> EnvironmentKey:
        """A new secret key for the environment; the old one stops working."""
        return self._client.send(calls.rotate_environment_key(ref, env))

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self) -> list[Project]:
        """Every project of your organizations."""
        return self._client.send(calls.list_projects())


class Deployments:
    """`client.deployments`: the versions of the task code deployed to the key's environment
    (staging, prod or a preview branch). Promote one to make new runs start on it; promoting
    an older one is a rollback. Runs already started keep their version."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def retrieve(self, version: str) -> Deployment:
        """A version (YYYYMMDD.N) with its tasks and whether it is current; NotFound if not deployed."""
        return self._client.send(calls.retrieve_deployment(version))

    def current(self) -> Deployment:
        """The version new runs start on; NotFound while nothing is deployed."""
        return self._client.send(calls.retrieve_deployment("current"))

    def promote(self, version: str) -> Deployment:
        """Make `version` current (an older one: a rollback)."""
        return self._client.send(calls.promote_deployment(version))

    def create(
        self,
        *,
        environment: str,
        tasks: list[TaskDefinition],
        bundle: bytes,
        lock_sha256: str,
        details: Mapping[str, Any] | None = None,
        branch: str | None = None,
        promote: bool = True,
    ) -> Deployment:
        """Upload a built bundle as a new version (`conveyor deploy` builds, checks and calls this)."""
        return self._client.send(
            calls.create_deployment(
                environment=environment,
                tasks=tasks,
                bundle=bundle,
                lock_sha256=lock_sha256,
                details=details,
                branch=branch,
                promote=promote,
            )
        )

    def bundle(self, version: str) -> tuple[DeploymentBundle, bytes]:
        """A version's bundle (its description, and the tar.gz checked against its sha256), as workers fetch it."""
        return self._client.send(calls.deployment_bundle(version))

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, *, limit: int = 20, cursor: str | None = None) -> DeploymentPage:
        """One page of versions, newest first; pass `page.next_cursor` as `cursor` for the next."""
        return self._client.send(calls.list_deployments(limit=limit, cursor=cursor))


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
