"""`client.projects` and `client.deployments`, for both clients: projects, their environments
and keys (with a personal access token), and the deployed versions of an environment's code."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from conveyor.client._calls import Call, DeploymentPage, segment
from conveyor.client._namespaces import Namespace, S, operation
from conveyor.errors import InvalidRequest
from conveyor.models import (
    Deployment,
    DeploymentBundle,
    EnvironmentKey,
    Project,
    ProjectEnvironment,
    TaskDefinition,
    User,
)

DEPLOY_ENVIRONMENTS = ("staging", "prod", "preview")
_projects = TypeAdapter(list[Project])
_environments = TypeAdapter(list[ProjectEnvironment])


def _project(ref: str, rest: str = "") -> str:
    return f"/api/v1/projects/{segment(ref, 'project')}{rest}"


def _key(ref: str, env: str) -> str:
    return _project(ref, f"/environments/{segment(env, 'environment')}/key")


class Projects(Namespace[S]):
    """`client.projects`: projects, their environments and keys. These calls need a personal
    access token (cv_pat_...) as the client's key, not an environment's key."""

    @operation
    def whoami(self) -> Call[User]:
        """The user of the token and their organizations."""
        return Call("GET", "/api/v1/me", User.model_validate)

    @operation
    def create(
        self, name: str, *, slug: str | None = None, organization: str | None = None
    ) -> Call[Project]:
        """A project with its dev, staging and prod environments; Conflict if the slug is taken."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"a project needs a name, got {name!r}")
        body = {"name": name.strip(), "slug": slug, "organization": organization}
        body = {k: v for k, v in body.items() if v is not None}
        return Call("POST", "/api/v1/projects", Project.model_validate, body=body)

    @operation
    def retrieve(self, ref: str) -> Call[Project]:
        """A project by ref (proj_...) or slug."""
        return Call("GET", _project(ref), Project.model_validate)

    @operation
    def environments(self, ref: str) -> Call[list[ProjectEnvironment]]:
        """The project's environments: dev, staging, prod and one per preview branch."""
        return Call(
            "GET",
            _project(ref, "/environments"),
            lambda data: _environments.validate_python(data["data"]),
        )

    @operation
    def preview_environment(self, ref: str, branch: str) -> Call[ProjectEnvironment]:
        """The preview environment of a git branch, made if it does not exist yet."""
        if not isinstance(branch, str) or not branch.strip():
            raise InvalidRequest(f"a preview environment needs a branch name, got {branch!r}")
        body = {"branch": branch.strip()}
        path = _project(ref, "/environments")
        return Call("POST", path, ProjectEnvironment.model_validate, body=body)

    @operation
    def key(self, ref: str, env: str) -> Call[EnvironmentKey]:
        """The secret key of environment `env` (dev, staging, prod or preview-<branch>)."""
        return Call("GET", _key(ref, env), EnvironmentKey.model_validate)

    @operation
    def rotate_key(self, ref: str, env: str) -> Call[EnvironmentKey]:
        """A new secret key for the environment; the old one stops working."""
        return Call("POST", _key(ref, env) + "/rotate", EnvironmentKey.model_validate)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(self) -> Call[list[Project]]:
        """Every project of your organizations."""
        return Call("GET", "/api/v1/projects", lambda data: _projects.validate_python(data["data"]))


def _deployment(version: Any, action: str = "") -> str:
    return f"/api/v1/deployments/{segment(version, 'version (YYYYMMDD.N)')}{action}"


class Deployments(Namespace[S]):
    """`client.deployments`: the versions of the task code deployed to the key's environment
    (staging, prod or a preview branch). Promote one to make new runs start on it; promoting
    an older one is a rollback. Runs already started keep their version."""

    @operation
    def retrieve(self, version: str) -> Call[Deployment]:
        """A version (YYYYMMDD.N) with its tasks and whether it is current;
        NotFound if not deployed."""
        return Call("GET", _deployment(version), Deployment.model_validate)

    @operation
    def current(self) -> Call[Deployment]:
        """The version new runs start on; NotFound while nothing is deployed."""
        return Call("GET", _deployment("current"), Deployment.model_validate)

    @operation
    def promote(self, version: str) -> Call[Deployment]:
        """Make `version` current (an older one: a rollback)."""
        return Call("POST", _deployment(version, "/promote"), Deployment.model_validate)

    @operation
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
    ) -> Call[Deployment]:
        """Upload a built bundle as a new version (`conveyor deploy` builds,
        checks and calls this)."""
        if environment not in DEPLOY_ENVIRONMENTS:
            raise InvalidRequest(
                f"deploy to one of {', '.join(DEPLOY_ENVIRONMENTS)}, not {environment!r}"
            )
        if not isinstance(bundle, bytes | bytearray) or not bundle:
            raise InvalidRequest("bundle must be the bytes of a tar.gz")
        body: dict[str, Any] = {
            "environment": environment,
            "tasks": [t.model_dump(mode="json") for t in tasks],
            "bundle": base64.b64encode(bytes(bundle)).decode(),
            "lock_sha256": lock_sha256,
            "details": dict(details or {}),
            "promote": promote,
        }
        if branch is not None:
            body["branch"] = branch
        return Call("POST", "/api/v1/deployments", Deployment.model_validate, body=body)

    @operation
    def report_failure(
        self,
        *,
        environment: str,
        error: str,
        branch: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Call[bool]:
        """Tell the environment a deploy failed before it could upload (`conveyor deploy` does):
        its deploy.failed alerts are sent."""
        body: dict[str, Any] = {
            "environment": environment,
            "error": error[:4000],
            "details": dict(details or {}),
        }
        if branch is not None:
            body["branch"] = branch
        return Call(
            "POST", "/api/v1/deployments/failures", lambda d: bool(d["reported"]), body=body
        )

    @operation
    def bundle(self, version: str) -> Call[tuple[DeploymentBundle, bytes]]:
        """A version's bundle (its description, and the tar.gz checked against its sha256),
        as workers fetch it."""

        def parse(data: Any) -> tuple[DeploymentBundle, bytes]:
            meta = DeploymentBundle.model_validate(data)
            try:
                raw = base64.b64decode(meta.bundle, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("the bundle is not base64") from exc
            if hashlib.sha256(raw).hexdigest() != meta.bundle_sha256:
                raise ValueError(f"the bundle of version {version} does not match its sha256")
            return meta, raw

        return Call("GET", _deployment(version, "/bundle"), parse)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(self, *, limit: int = 20, cursor: str | None = None) -> Call[DeploymentPage]:
        """One page of versions, newest first; pass `page.next_cursor` as `cursor` for the next."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidRequest(f"limit must be a whole number from 1 to 100, got {limit!r}")
        params = [("limit", str(limit))] + ([("cursor", cursor)] if cursor is not None else [])

        def parse(data: Any) -> DeploymentPage:
            return DeploymentPage(
                [Deployment.model_validate(d) for d in data["data"]], data.get("next_cursor")
            )

        return Call("GET", "/api/v1/deployments", parse, params=tuple(params))
