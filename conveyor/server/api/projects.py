"""Account routes, authenticated by a personal access token (cv_pat_...), never by an
environment key: who am I, projects, their environments, and each environment's secret key.

    GET  /api/v1/me                                         the caller and their organizations
    POST /api/v1/projects                  GET /api/v1/projects
    GET  /api/v1/projects/{ref}                             ref: proj_... or the project's slug
    GET  /api/v1/projects/{ref}/environments
    POST /api/v1/projects/{ref}/environments                {branch}: the preview environment,
                                                            made on demand
    GET  /api/v1/projects/{ref}/environments/{env}/key      env: dev, staging, prod,
                                                            preview-<branch>
    POST /api/v1/projects/{ref}/environments/{env}/key/rotate

Everything here goes through `engine.accounts`; no route touches runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from conveyor.models import EnvironmentKey, Project, ProjectEnvironment, User
from conveyor.server.auth import CallerDep, EngineDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    ACCOUNT_ERROR_RESPONSES,
    CONFLICT_RESPONSE,
    CreateProjectBody,
    EnvironmentList,
    PreviewBody,
    ProjectList,
)

me_router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/me", tags=["accounts"], responses=ACCOUNT_ERROR_RESPONSES
)
router = APIRouter(
    route_class=ApiRoute,
    prefix="/api/v1/projects",
    tags=["accounts"],
    responses=ACCOUNT_ERROR_RESPONSES,
)

# a secret must not linger in a proxy's or browser's cache
_NO_STORE = {"Cache-Control": "no-store"}


@me_router.get("", response_model=User, summary="The caller")
def whoami(caller: CallerDep, engine: EngineDep) -> User:
    """The user of the personal access token and the organizations they belong to
    (`conveyor login` checks a token with it)."""
    return engine.accounts.whoami(caller)


@router.post(
    "",
    status_code=201,
    response_model=Project,
    summary="Create a project",
    responses=CONFLICT_RESPONSE,
)
def create_project(body: CreateProjectBody, caller: CallerDep, engine: EngineDep) -> Project:
    """A project with its dev, staging and prod environments, each with its own secret key.
    409 when the organization already has a project with the slug."""
    return engine.accounts.create_project(
        caller, body.name, slug=body.slug, organization=body.organization
    )


@router.get("", response_model=ProjectList, summary="List projects")
def list_projects(caller: CallerDep, engine: EngineDep) -> ProjectList:
    """Every project of the caller's organizations, oldest first, with their environments."""
    return ProjectList(data=engine.accounts.list_projects(caller))


@router.get("/{ref}", response_model=Project, summary="Retrieve a project")
def retrieve_project(ref: str, caller: CallerDep, engine: EngineDep) -> Project:
    return engine.accounts.get_project(caller, ref)


@router.get(
    "/{ref}/environments", response_model=EnvironmentList, summary="List a project's environments"
)
def list_environments(ref: str, caller: CallerDep, engine: EngineDep) -> EnvironmentList:
    """dev, staging, prod, then the preview environments by slug."""
    return EnvironmentList(data=engine.accounts.get_project(caller, ref).environments)


@router.post(
    "/{ref}/environments",
    response_model=ProjectEnvironment,
    summary="Get or create a preview environment",
    responses={
        201: {"model": ProjectEnvironment, "description": "The preview environment, made now"}
    },
)
def preview_environment(
    ref: str, body: PreviewBody, caller: CallerDep, engine: EngineDep, response: Response
) -> ProjectEnvironment:
    """The preview environment of a git branch (slug `preview-<branch>`), made with its own key
    when it does not exist yet (201), or the existing one (200)."""
    env, created = engine.accounts.preview_environment(caller, ref, body.branch)
    response.status_code = 201 if created else 200
    return env


@router.get(
    "/{ref}/environments/{env}/key",
    response_model=EnvironmentKey,
    summary="Show an environment's key",
)
def show_key(
    ref: str, env: str, caller: CallerDep, engine: EngineDep, response: Response
) -> EnvironmentKey:
    """The environment's live secret key (`cv_dev_`, `cv_stg_`, `cv_prod_` or `cv_prev_`...)."""
    response.headers.update(_NO_STORE)
    return engine.accounts.environment_key(caller, ref, env)


@router.post(
    "/{ref}/environments/{env}/key/rotate",
    response_model=EnvironmentKey,
    summary="Rotate an environment's key",
)
def rotate_key(
    ref: str, env: str, caller: CallerDep, engine: EngineDep, response: Response
) -> EnvironmentKey:
    """A new secret key that works at once; every earlier key of the environment is revoked
    (other servers of the same database stop accepting it within 5 seconds)."""
    response.headers.update(_NO_STORE)
    return engine.accounts.rotate_key(caller, ref, env)
