"""Deploys in the engine: versions of the task code, the current version, and runs waiting for one.

    deploy ─▶ version YYYYMMDD.N (its tasks, its bundle) ─(promote)─▶ current version
                                                                          │
    trigger ─▶ QUEUED ─(lease: locks the run to the current version)─▶ EXECUTING on that version
        └─ task no version defines ─▶ PENDING_VERSION ─(a promoted version defines it)─▶ QUEUED

A run locks to the current version when it first starts; retries and resumed waits keep it, and
children it waits for are locked to it from the start. Promoting a version (an older one is a
rollback) sets the environment's task definitions to that version's, queues the runs waiting
for a task it defines, and moves runs that have not started, of tasks it does not define, to
PENDING_VERSION: a deploy never strands a run silently. (A worker that brings its own code to
a staging or prod environment nothing was deployed to defines tasks too, and queues their
waiting runs the same way.)

The routes of conveyor/server/api/deployments.py and the client's `deployments` namespace are
this part. Which tasks a version defines, and queueing the runs that waited for them, is
transitions.py's (`version_tasks`, `put_tasks`), shared with triggering and workers. It stores
bundles and checks at upload that a worker may unpack them (`bundle_problem`: plain files inside
the project, bounded in number and size), so a bad bundle is a 400 naming its member rather than
a version whose every run crashes; what the files say is the CLI's and the worker's business.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conveyor.bundles import MAX_BUNDLE_BYTES, bundle_problem
from conveyor.engine.alerts import Alerts
from conveyor.engine.events import Events
from conveyor.engine.transitions import Transitions
from conveyor.engine.views import json_text
from conveyor.errors import InvalidRequest, NotFound
from conveyor.ids import new_id
from conveyor.models import Deployment, DeploymentBundle, TaskDefinition
from conveyor.store import Row, Store, Tx

MAX_TASKS_PER_VERSION = 10_000


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def deployment_view(row: Row) -> Deployment:
    tasks = [t["id"] for t in json.loads(row["tasks"])]
    return Deployment(
        id=row["id"],
        version=row["version"],
        environment=row["environment"],
        status=row["status"],
        is_current=bool(row["is_current"]),
        tasks=tasks,
        bundle_sha256=row["bundle_sha256"],
        bundle_size=row["bundle_size"],
        lock_sha256=row["lock_sha256"],
        details=json.loads(row["details"] or "{}"),
        created_at=_time(row["created_at"]),
        promoted_at=_time(row["promoted_at"]),
    )


class Deployments:
    """Versions of an environment's task code (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
        alerts: Alerts,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._alerts = alerts

    def deploy(
        self,
        env_id: str,
        tasks: list[TaskDefinition],
        bundle: bytes,
        *,
        lock_sha256: str,
        details: dict[str, Any] | None = None,
        promote: bool = True,
    ) -> Deployment:
        """Record a new version of the environment's task code with its bundle, numbered
        YYYYMMDD.N, and (unless `promote` is False) make it current. A deploy refused here owes
        the environment's deploy.failed alerts, one made its deploy.succeeded alerts."""
        try:
            return self._deploy(
                env_id, tasks, bundle, lock_sha256=lock_sha256, details=details, promote=promote
            )
        except InvalidRequest as exc:
            self._alerts.deploy_failed(env_id, str(exc))
            raise

    def failed(self, env_id: str, error: str, details: dict[str, Any] | None = None) -> None:
        """A deploy failed before it reached the server (its build, or the import of its tasks,
        on the deploying machine): owe the environment's deploy.failed alerts."""
        if not isinstance(error, str) or not error.strip():
            raise InvalidRequest("say why the deploy failed")
        self._alerts.deploy_failed(env_id, error, details)

    def _deploy(
        self,
        env_id: str,
        tasks: list[TaskDefinition],
        bundle: bytes,
        *,
        lock_sha256: str,
        details: dict[str, Any] | None,
        promote: bool,
    ) -> Deployment:
        if not tasks:
            raise InvalidRequest(
                "a version needs at least one task: the deploy found none in the project's dirs"
            )
        if len(tasks) > MAX_TASKS_PER_VERSION:
            raise InvalidRequest(
                f"a version defines at most {MAX_TASKS_PER_VERSION} tasks, got {len(tasks)}"
            )
        ids = [t.id for t in tasks]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise InvalidRequest(f"the manifest defines task {twice[0]!r} more than once")
        if not bundle:
            raise InvalidRequest("the bundle is empty")
        if len(bundle) > MAX_BUNDLE_BYTES:
            raise InvalidRequest(
                f"the bundle is {len(bundle) / 1024**2:.1f} MB; the limit is "
                f"{MAX_BUNDLE_BYTES // 1024**2} MB: keep data files out of the task dirs"
            )
        problem = bundle_problem(bundle)
        if problem:
            raise InvalidRequest(problem)
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            env = tx.one("get_environment", id=env_id)
            if env is None:
                raise NotFound(f"environment {env_id} not found")
            if env["kind"] == "dev":
                raise InvalidRequest(
                    "dev runs the code of `conveyor dev` and takes no deploys; deploy to "
                    "staging, prod or a preview branch"
                )
            day = time.strftime("%Y%m%d", time.gmtime(now))
            count = tx.one("count_versions_of_day", env_id=env_id, prefix=f"{day}.%")
            version = f"{day}.{(count['n'] if count else 0) + 1}"
            deployment_id = new_id("deploy", now)
            tx.run(
                "insert_deployment",
                id=deployment_id,
                env_id=env_id,
                version=version,
                tasks=json_text([t.model_dump(mode="json") for t in tasks]),
                bundle_sha256=hashlib.sha256(bundle).hexdigest(),
                bundle_size=len(bundle),
                lock_sha256=lock_sha256,
                details=json_text(details or {}),
                now=now,
            )
            tx.run("insert_deployment_bundle", deployment_id=deployment_id, data=bundle)
            queued = self._promote(tx, env_id, version, now) if promote else False
            row = tx.one("get_deployment", env_id=env_id, version=version)
            assert row is not None
            self._alerts.deployed(
                tx,
                env_id,
                {
                    "deployment_id": deployment_id,
                    "version": version,
                    "promoted": promote,
                    "tasks": [t.id for t in tasks],
                },
                now,
            )
        if queued:
            self._events.emit("available", env_id)
        return deployment_view(row)

    def promote(self, env_id: str, version: str) -> Deployment:
        """Make `version` the one new runs start on (an older one: a rollback). Runs already
        started keep their version."""
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            if tx.one("get_deployment", env_id=env_id, version=version) is None:
                raise NotFound(
                    f"version {version!r} is not deployed in this environment; "
                    "see `conveyor deploys list`"
                )
            queued = self._promote(tx, env_id, version, now)
            row = tx.one("get_deployment", env_id=env_id, version=version)
        assert row is not None
        if queued:
            self._events.emit("available", env_id)
        return deployment_view(row)

    def _promote(self, tx: Tx, env_id: str, version: str, now: float) -> bool:
        """Inside `tx`, holding the environment's lock. True when runs may start now."""
        tasks = self._transitions.version_tasks(tx, env_id, version)
        tx.run("set_current_version", id=env_id, version=version)
        tx.run("mark_promoted", env_id=env_id, version=version, now=now)
        tx.run("strand_unstarted_runs", env_id=env_id, keep=list(tasks), now=now)
        self._transitions.put_tasks(
            tx, env_id, list(tasks.values()), now
        )  # which resolves the runs now defined
        return True

    # -- reading ----------------------------------------------------------------------------

    def current_version(self, env_id: str) -> str | None:
        """The environment's current version, None while nothing is deployed."""
        with self._store.read() as tx:
            env = tx.one("get_environment", id=env_id)
        return env["current_version"] if env is not None else None

    def get(self, env_id: str, version: str) -> Deployment:
        """One version; `current` names the current one."""
        with self._store.read() as tx:
            if version == "current":
                env = tx.one("get_environment", id=env_id)
                if env is None or env["current_version"] is None:
                    raise NotFound(
                        "nothing is deployed in this environment yet: run `conveyor deploy`"
                    )
                version = env["current_version"]
            row = tx.one("get_deployment", env_id=env_id, version=version)
        if row is None:
            raise NotFound(
                f"version {version!r} is not deployed in this environment; "
                "see `conveyor deploys list`"
            )
        return deployment_view(row)

    def bundle(self, env_id: str, version: str) -> DeploymentBundle:
        """A version's bundle, for a worker to run it."""
        import base64

        with self._store.read() as tx:
            row = tx.one("get_deployment_bundle", env_id=env_id, version=version)
        if row is None:
            raise NotFound(f"version {version!r} is not deployed in this environment")
        return DeploymentBundle(
            version=row["version"],
            bundle_sha256=row["bundle_sha256"],
            lock_sha256=row["lock_sha256"],
            bundle=base64.b64encode(bytes(row["data"])).decode(),
        )

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(
        self, env_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Deployment], str | None]:
        """A page of versions, newest first; the cursor of the next page, if any."""
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100")
        before: float | None = None
        if cursor is not None:
            try:
                before = float(cursor)
            except ValueError as exc:
                raise InvalidRequest("cursor must be the next_cursor of a previous page") from exc
        with self._store.read() as tx:
            rows = tx.all("list_deployments", env_id=env_id, cursor=before, limit=limit + 1)
        page = [deployment_view(r) for r in rows[:limit]]
        next_cursor = repr(rows[limit - 1]["created_at"]) if len(rows) > limit else None
        return page, next_cursor
