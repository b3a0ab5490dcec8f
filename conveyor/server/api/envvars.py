"""Environment variable routes: set, unset, list and import an environment's variables
(docs/environment-variables.md). No answer carries a value: only names and short hashes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from conveyor.models import EnvVar, EnvVarList
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/envvars", tags=["envvars"], responses=API_RESPONSES
)

NameParam = Annotated[
    str,
    Path(
        description="The variable's name: letters, digits and _, not starting with a digit, "
        "not starting with CONVEYOR_ (reserved)",
    ),
]


class SetEnvVarBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(description="The value (at most 32 KiB of UTF-8, no NUL); never shown again")


class ImportEnvVarsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, str] = Field(description="Names and values, all set in one change")


class ImportedEnvVars(BaseModel):
    """The variables an import set (names and hashes)."""

    data: list[EnvVar]


@router.get("", response_model=EnvVarList, summary="List environment variables")
def list_envvars(env: EnvironmentDep, engine: EngineDep) -> EnvVarList:
    """The environment's variables: names and short hashes of their values, never the values."""
    return engine.envvars.list(env.id)


@router.put("/{variable}", response_model=EnvVar, summary="Set an environment variable")
def set_envvar(
    variable: NameParam, body: SetEnvVarBody, env: EnvironmentDep, engine: EngineDep
) -> EnvVar:
    """Make or replace a variable. The attempts that start after this see the new value; the
    answer shows its hash only."""
    return engine.envvars.set(env.id, variable, body.value)


@router.delete("/{variable}", response_model=EnvVar, summary="Unset an environment variable")
def unset_envvar(variable: NameParam, env: EnvironmentDep, engine: EngineDep) -> EnvVar:
    """Remove a variable (answered as it was: its name and hash); 404 if there is none by that
    name. The attempts that start after this no longer have it."""
    return engine.envvars.unset(env.id, variable)


@router.post("/import", response_model=ImportedEnvVars, summary="Import environment variables")
def import_envvars(
    body: ImportEnvVarsBody, env: EnvironmentDep, engine: EngineDep
) -> ImportedEnvVars:
    """Set several variables at once (all or none); the others stay as they are."""
    return ImportedEnvVars(data=engine.envvars.import_(env.id, body.variables))
