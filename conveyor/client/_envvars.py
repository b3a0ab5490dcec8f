"""`client.envvars`: the environment variables and secrets of the key's environment, for both
clients (docs/environment-variables.md). Values go to the platform and never come back: the
answers carry names and short hashes only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.client._calls import Call, segment
from conveyor.client._namespaces import Namespace, S, operation
from conveyor.dotenv import parse_dotenv
from conveyor.errors import InvalidRequest
from conveyor.models import EnvVar, EnvVarList


def _variable(name: Any) -> str:
    return f"/api/v1/envvars/{segment(name, 'variable name')}"


def _imported(data: Any) -> list[EnvVar]:
    return [EnvVar.model_validate(v) for v in data["data"]]


class EnvVars(Namespace[S]):
    """`client.envvars`: set, unset, list and import the environment's variables. The workers
    of the environment give them to the attempts that start after a change, no redeploy."""

    @operation
    def set(self, name: str, value: str) -> Call[EnvVar]:
        """Make or replace a variable; answered with its name and hash."""
        if not isinstance(value, str):
            raise InvalidRequest(f"{name}: a value is a string, got {type(value).__name__}")
        return Call("PUT", _variable(name), EnvVar.model_validate, body={"value": value})

    @operation
    def unset(self, name: str) -> Call[EnvVar]:
        """Remove a variable (answered as it was); NotFound if there is none by that name."""
        return Call("DELETE", _variable(name), EnvVar.model_validate)

    @operation
    def import_(
        self, variables: Mapping[str, str] | None = None, *, dotenv: str | Path | None = None
    ) -> Call[list[EnvVar]]:
        """Set several variables at once (all or none): a mapping, or `dotenv`, the path of a
        .env file (`NAME=value` lines, see conveyor/dotenv.py)."""
        found: dict[str, str] = dict(variables or {})
        if dotenv is not None:
            path = Path(dotenv)
            try:
                text = path.read_text()
            except OSError as exc:
                raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from None
            found |= parse_dotenv(text, str(path))
        if not found:
            raise InvalidRequest("no variables to import")
        return Call("POST", "/api/v1/envvars/import", _imported, body={"variables": found})

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(self) -> Call[EnvVarList]:
        """The environment's variables: names, hashes and when each was set; never values."""
        return Call("GET", "/api/v1/envvars", EnvVarList.model_validate)
