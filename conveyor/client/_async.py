"""`AsyncClient`: the API over httpx.AsyncClient, for async backends and the default client.

Every call is built and read by `conveyor.client._calls`; this module only sends it. Keep it
in step with `_sync.py`, which offers the same surface synchronously.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

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


class AsyncClient:
    """The Conveyor API, asynchronously: `await client.trigger("my-task", {...})`.

    `api_url` and `secret_key` default to CONVEYOR_API_URL / CONVEYOR_SECRET_KEY, then to the
    nearest `.conveyor/dev.json` (written by `conveyor dev`). Close it with `await aclose()`
    or use it as `async with AsyncClient() as client:`."""

    def __init__(
        self,
        api_url: str | None = None,
        secret_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url, key = resolve_settings(api_url, secret_key)
        self._http = httpx.AsyncClient(
            base_url=self.api_url, headers=calls.headers(key), timeout=timeout, transport=transport
        )
        self.tasks = AsyncTasks(self)
        self.runs = AsyncRuns(self)
        self.queues = AsyncQueues(self)
        self.waitpoints = AsyncWaitpoints(self)
        self.projects = AsyncProjects(self)
        self.deployments = AsyncDeployments(self)

    def __repr__(self) -> str:
        return f"<AsyncClient {self.api_url}>"

    async def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Start a run of `task_id`; the same as `client.tasks.trigger`."""
        return await self.tasks.trigger(task_id, payload, options=options, **kwargs)

    async def batch_trigger(self, task_id: str, items: Iterable[Mapping[str, Any]]) -> BatchHandle:
        """Start one run per `{"payload": ..., "options": {...}}`; the same as `client.tasks.batch_trigger`."""
        return await self.tasks.batch_trigger(task_id, items)

    async def send(self, call: calls.Call[T]) -> T:
        """Send one call and read its answer (the lower level every method goes through). A call
        refused for the key's rate limit (429) or a database outage (503) is sent again after
        the Retry-After the server gives, a few times (`calls.retry_delay`)."""
        retries = 0
        while True:
            try:
                response = await self._http.request(
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
            delay = calls.retry_delay(
                response.status_code,
                response.headers.get("retry-after"),
                retries if call.resend_refused else calls.REFUSED_RETRIES,
            )
            if delay is None:
                return calls.read_response(call, response.status_code, response.content)
            retries += 1
            await asyncio.sleep(delay)

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncTasks:
    """`client.tasks`: trigger tasks and read their definitions."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        options: Mapping[str, Any] | TriggerOptions | None = None,
        **kwargs: Any,
    ) -> RunHandle:
        """Start a run of `task_id` with `payload` (JSON; pydantic models and datetimes are
        converted). Options go as keywords (`tags=["a"]`, `delay="1h"`) or as `options=`."""
        return await self._client.send(
            calls.trigger(task_id, payload, calls.merge_options(options, kwargs))
        )

    async def batch_trigger(self, task_id: str, items: Iterable[Mapping[str, Any]]) -> BatchHandle:
        """Start one run per item (`{"payload": ..., "options": {...}}`), 1 to 1,000, all or none."""
        return await self._client.send(calls.batch_trigger(task_id, items))

    async def list(self) -> list[TaskDefinition]:
        return await self._client.send(calls.list_tasks())

    async def retrieve(self, task_id: str) -> TaskDefinition:
        return await self._client.send(calls.retrieve_task(task_id))


class AsyncRuns:
    """`client.runs`: read, list, cancel, replay and wait for runs."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def retrieve(self, run_id: str) -> Run:
        """The run with its attempt count and finished attempts (`attempt_list`)."""
        return await self._client.send(calls.retrieve_run(run_id))

    async def cancel(self, run_id: str) -> Run:
        """Cancel a run that has not ended; Conflict if it has."""
        return await self._client.send(calls.cancel_run(run_id))

    async def replay(self, run_id: str, payload: Any = UNSET) -> RunHandle:
        """A new run of the same task and options, with the same payload unless `payload` is given."""
        return await self._client.send(calls.replay_run(run_id, payload))

    async def logs(self, run_id: str) -> list[LogLine]:
        return await self._client.send(calls.run_logs(run_id))

    async def trace(self, run_id: str) -> Trace:
        """The run's spans as a tree: attempts, and the steps, triggers, waits and tokens of each."""
        return await self._client.send(calls.run_trace(run_id))

    async def poll(self, run_id: str, interval: float = 0.5, timeout: float | None = None) -> Run:
        """The run once it has ended (any final status); TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = await self.retrieve(run_id)
            delay = calls.poll_delay(run, interval, deadline, time.monotonic(), timeout)
            if delay is None:
                return run
            await asyncio.sleep(delay)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
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
        """One page of runs, newest first; pass `page.next_cursor` as `cursor` for the next. With
        `roots=True`, only the runs no other run triggered (each run's `child_count` says how many
        it triggered)."""
        return await self._client.send(
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


class AsyncQueues:
    """`client.queues`: list queues, pause and resume them, change their limit."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[QueueInfo]:
        return await self._client.send(calls.list_queues())

    async def retrieve(self, name: str) -> QueueInfo:
        return await self._client.send(calls.retrieve_queue(name))

    async def pause(self, name: str) -> QueueInfo:
        """No new run of the queue starts until it is resumed."""
        return await self._client.send(calls.pause_queue(name))

    async def resume(self, name: str) -> QueueInfo:
        return await self._client.send(calls.resume_queue(name))

    async def set_concurrency(self, name: str, limit: int | None) -> QueueInfo:
        """Override the queue's concurrency limit; None clears the override (the code's limit applies again)."""
        return await self._client.send(calls.set_queue_concurrency(name, limit))


class AsyncWaitpoints:
    """Waitpoint tokens: `client.waitpoints.create_token(...)`, `.complete_token(id, data)`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create_token(
        self,
        *,
        timeout: float | str | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
    ) -> Token:
        return await self._client.send(
            calls.create_token(timeout=timeout, idempotency_key=idempotency_key, tags=tags)
        )

    async def complete_token(self, token_id: str, data: Any = None) -> Token:
        """Complete a token; every run waiting on it resumes with `data` as the output."""
        return await self._client.send(calls.complete_token(token_id, data))

    async def retrieve_token(self, token_id: str) -> Token:
        return await self._client.send(calls.retrieve_token(token_id))

    async def list_tokens(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Token]:
        """One page of tokens, newest first; pass `page.next_cursor` as `cursor` for the next."""
        return await self._client.send(calls.list_tokens(status=status, limit=limit, cursor=cursor))


class AsyncProjects:
    """`client.projects`: projects, their environments and keys. These calls need a personal
    access token (cv_pat_...) as the client's key, not an environment's key."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def whoami(self) -> User:
        """The user of the token and their organizations."""
        return await self._client.send(calls.whoami())

    async def create(
        self, name: str, *, slug: str | None = None, organization: str | None = None
    ) -> Project:
        """A project with its dev, staging and prod environments; Conflict if the slug is taken."""
        return await self._client.send(
            calls.create_project(name, slug=slug, organization=organization)
        )

    async def retrieve(self, ref: str) -> Project:
        """A project by ref (proj_...) or slug."""
        return await self._client.send(calls.retrieve_project(ref))

    async def environments(self, ref: str) -> list[ProjectEnvironment]:
        return await self._client.send(calls.list_environments(ref))

    async def preview_environment(self, ref: str, branch: str) -> ProjectEnvironment:
        """The preview environment of a git branch, made if it does not exist yet."""
        return await self._client.send(calls.preview_environment(ref, branch))

    async def key(self, ref: str, env: str) -> EnvironmentKey:
        """The secret key of environment `env` (dev, staging, prod or preview-<branch>)."""
        return await self._client.send(calls.environment_key(ref, env))

    async def rotate_key(self, ref: str, env: str) -> EnvironmentKey:
        """A new secret key for the environment; the old one stops working."""
        return await self._client.send(calls.rotate_environment_key(ref, env))

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    async def list(self) -> list[Project]:
        """Every project of your organizations."""
        return await self._client.send(calls.list_projects())


class AsyncDeployments:
    """`client.deployments`: the versions of the task code deployed to the key's environment
    (staging, prod or a preview branch). Promote one to make new runs start on it; promoting
    an older one is a rollback. Runs already started keep their version."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def retrieve(self, version: str) -> Deployment:
        """A version (YYYYMMDD.N) with its tasks and whether it is current; NotFound if not deployed."""
        return await self._client.send(calls.retrieve_deployment(version))

    async def current(self) -> Deployment:
        """The version new runs start on; NotFound while nothing is deployed."""
        return await self._client.send(calls.retrieve_deployment("current"))

    async def promote(self, version: str) -> Deployment:
        """Make `version` current (an older one: a rollback)."""
        return await self._client.send(calls.promote_deployment(version))

    async def create(
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
        return await self._client.send(
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

    async def bundle(self, version: str) -> tuple[DeploymentBundle, bytes]:
        """A version's bundle (its description, and the tar.gz checked against its sha256), as workers fetch it."""
        return await self._client.send(calls.deployment_bundle(version))

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    async def list(self, *, limit: int = 20, cursor: str | None = None) -> DeploymentPage:
        """One page of versions, newest first; pass `page.next_cursor` as `cursor` for the next."""
        return await self._client.send(calls.list_deployments(limit=limit, cursor=cursor))
