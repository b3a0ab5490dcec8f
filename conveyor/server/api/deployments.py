"""Deployment routes: deploy a version of the task code, list and show versions, promote one (a
rollback is a promote of an older version), and hand a version's bundle to a worker.

The key decides the environment, as everywhere; a deploy also names the environment it means
(`prod`, say) so that a key of the wrong environment fails the deploy instead of shipping code
there. Versions, promotion and what happens to runs are the engine's
(conveyor/engine/deployments.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from conveyor.bundles import MAX_BUNDLE_BYTES
from conveyor.engine import Environment, preview_slug
from conveyor.errors import Forbidden, InvalidRequest
from conveyor.models import Deployment, DeploymentBundle, TaskDefinition, WireModel
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES, ErrorResponse

router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/deployments",
    tags=["deployments"],
    responses=API_RESPONSES,
)


class DeployBody(WireModel):
    """`POST /api/v1/deployments`: a version's bundle and the tasks it defines (indexed by the
    deploying machine, which imported them)."""

    model_config = ConfigDict(extra="forbid")

    environment: Literal["staging", "prod", "preview"] = Field(
        description="The environment the deploy means; it must be the key's"
    )
    branch: str | None = Field(
        None, max_length=200, description="With preview: the branch of the environment"
    )
    tasks: list[TaskDefinition] = Field(min_length=1, max_length=10_000)
    bundle: str = Field(
        description=f"The tar.gz bundle, base64; at most {MAX_BUNDLE_BYTES // 1024**2} MB decoded"
    )
    lock_sha256: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    details: dict[str, Any] = Field(default_factory=dict)
    promote: bool = Field(True, description="Make it current at once (false: `--skip-promotion`)")


class DeploymentList(BaseModel):
    """One page of versions, newest first; pass `next_cursor` back as `cursor` for the next page."""

    data: list[Deployment]
    next_cursor: str | None = None


def _check_environment(env: Environment, environment: str, branch: str | None) -> None:
    """Forbidden unless the key's environment is the one the deploy means."""
    if env.kind != environment:
        raise Forbidden(
            f"this key belongs to the {env.slug} environment, not {environment}: use the "
            f"{environment} key (`conveyor keys show --env {environment}`)"
        )
    if branch is not None and env.slug != preview_slug(branch):
        raise Forbidden(
            f"this key belongs to the {env.slug} environment, not the preview of branch {branch!r}"
        )


@router.post(
    "",
    response_model=Deployment,
    status_code=status.HTTP_201_CREATED,
    summary="Deploy a version",
    responses={
        403: {"model": ErrorResponse, "description": "The key belongs to another environment"}
    },
)
def create_deployment(body: DeployBody, env: EnvironmentDep, engine: EngineDep) -> Deployment:
    """Record a new version YYYYMMDD.N of the environment's task code and, unless `promote` is
    false, make it current: new runs start on it, runs in flight stay on theirs, and runs
    waiting in PENDING_VERSION for a task it defines are queued."""
    _check_environment(env, body.environment, body.branch)
    if len(body.bundle) > (MAX_BUNDLE_BYTES * 4) // 3 + 4:
        raise InvalidRequest(
            f"the bundle is over the limit of {MAX_BUNDLE_BYTES // 1024**2} MB: "
            "keep data files out of the task dirs"
        )
    try:
        bundle = base64.b64decode(body.bundle, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("bundle must be base64") from exc
    return engine.deployments.deploy(
        env.id,
        body.tasks,
        bundle,
        lock_sha256=body.lock_sha256,
        details=body.details,
        promote=body.promote,
    )


class DeployFailureBody(WireModel):
    """`POST /api/v1/deployments/failures`: a deploy that failed before it could upload (its
    build, or the import of its tasks, on the deploying machine)."""

    model_config = ConfigDict(extra="forbid")

    environment: Literal["staging", "prod", "preview"] | None = Field(
        None, description="The environment the deploy meant, if given it must be the key's"
    )
    branch: str | None = Field(None, max_length=200)
    error: str = Field(min_length=1, max_length=4000, pattern=r"\S", description="What failed")
    details: dict[str, Any] = Field(default_factory=dict)


class DeployFailureReported(BaseModel):
    reported: bool = True


@router.post(
    "/failures",
    response_model=DeployFailureReported,
    summary="Report a failed deploy",
    responses={
        403: {"model": ErrorResponse, "description": "The key belongs to another environment"}
    },
)
def report_deploy_failure(
    body: DeployFailureBody, env: EnvironmentDep, engine: EngineDep
) -> DeployFailureReported:
    """Tell the environment that a deploy failed before it reached the server (`conveyor deploy`
    does, when the bundle cannot be built or its tasks cannot be imported): its deploy.failed
    alerts are sent. Nothing else changes; the current version keeps serving."""
    if body.environment is not None:
        _check_environment(env, body.environment, body.branch)
    engine.deployments.failed(env.id, body.error, body.details)
    return DeployFailureReported()


@router.get("", response_model=DeploymentList, summary="List versions")
def list_deployments(
    env: EnvironmentDep,
    engine: EngineDep,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(
        None,
        pattern=r"^[0-9]{1,12}(\.[0-9]{1,9})?$",
        description="`next_cursor` of the previous page",
    ),
) -> DeploymentList:
    page, next_cursor = engine.deployments.list(env.id, limit=limit, cursor=cursor)
    return DeploymentList(data=page, next_cursor=next_cursor)


@router.get("/current", response_model=Deployment, summary="The current version")
def current_deployment(env: EnvironmentDep, engine: EngineDep) -> Deployment:
    """The version new runs start on; 404 while nothing is deployed."""
    return engine.deployments.get(env.id, "current")


@router.get("/{version}", response_model=Deployment, summary="Retrieve a version")
def retrieve_deployment(version: str, env: EnvironmentDep, engine: EngineDep) -> Deployment:
    return engine.deployments.get(env.id, version)


@router.post(
    "/{version}/promote", response_model=Deployment, summary="Promote a version (or roll back)"
)
def promote_deployment(version: str, env: EnvironmentDep, engine: EngineDep) -> Deployment:
    """Make `version` current. Promoting an older version is a rollback. Runs already started
    keep the version they started on."""
    return engine.deployments.promote(env.id, version)


@router.get(
    "/{version}/bundle", response_model=DeploymentBundle, summary="A version's bundle (for workers)"
)
def deployment_bundle(version: str, env: EnvironmentDep, engine: EngineDep) -> DeploymentBundle:
    return engine.deployments.bundle(env.id, version)
