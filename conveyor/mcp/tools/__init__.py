"""The MCP tools, one module per concern: docs, accounts, tasks, runs, realtime (a run's
metadata and streams), schedules, deploys, alerts.

Each module has `register(server, access)`. Every tool carries annotations (a host treats an
unannotated tool as destructive); write tools are left out entirely under --readonly, so the
model never sees them, and under --dev-only the `environment` argument's schema only admits
"dev". Tool modules evaluate their annotations at definition time (no `from __future__ import
annotations`): the SDK reads the signatures to build each tool's input and output schemas.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from conveyor.mcp.access import ENVIRONMENT_PATTERN, Access

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

EnvironmentArg = Annotated[
    str | None,
    Field(
        pattern=ENVIRONMENT_PATTERN,
        description=(
            "dev, staging, prod or preview-<branch>. Leave it out to use the environment of the "
            "key this server runs with (in a project where `conveyor dev` runs: its dev server)."
        ),
    ),
]
DevOnlyEnvironmentArg = Annotated[
    Literal["dev"] | None,
    Field(description="Only dev: this server runs with --dev-only. Leave it out."),
]
ProjectRefArg = Annotated[
    str | None,
    Field(
        description=(
            "The project (proj_... or its slug); needed only with a personal access token and "
            "outside a project folder. Leave it out otherwise."
        )
    ),
]


def add(
    server: MCPServer[Any],
    access: Access,
    fn: Callable[..., Any],
    annotations: ToolAnnotations,
    title: str,
) -> None:
    """Register one tool, unless it writes and the server is read-only."""
    if access.options.readonly and not annotations.read_only_hint:
        return
    if access.options.dev_only and "environment" in fn.__annotations__:
        fn.__annotations__["environment"] = DevOnlyEnvironmentArg
    server.add_tool(fn, title=title, annotations=annotations)
