"""whoami, list_orgs, list_projects and initialize_project: who this server acts as,
and projects."""

from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.errors import ConveyorError
from conveyor.mcp.access import Access, key_kind
from conveyor.mcp.answers import (
    Identity,
    InitializedProject,
    Organizations,
    Projects,
    answer,
    tool_errors,
)
from conveyor.mcp.tools import READ, WRITE, add
from conveyor.models import Project


def register(server: MCPServer[Any], access: Access) -> None:
    async def whoami() -> Annotated[CallToolResult, Identity]:
        """Say which Conveyor server and credential this MCP server uses, and what is wrong if it
        cannot reach one. Call it first when another tool reports a connection or key problem."""
        identity = Identity(
            credential="none",
            readonly=access.options.readonly,
            dev_only=access.options.dev_only,
            project_ref=access.options.project_ref,
            project=access.local_project(),
        )
        dev_file = access.dev_file()
        identity.dev_server_file = str(dev_file) if dev_file else None
        direct, token = access.direct_key(), access.account_token()
        identity.credential = (
            "both"
            if direct and token
            else "environment_key"
            if direct
            else "personal_access_token"
            if token
            else "none"
        )
        if direct:
            identity.api_url, identity.environment = direct[0], key_kind(direct[1]) or "dev"
            try:
                await (await access.environment()).tasks.list()
            except ConveyorError as exc:
                identity.problems.append(f"the environment key does not work: {exc.message}")
        if token:
            identity.api_url = identity.api_url or token[0]
            try:
                identity.user = await access.account().projects.whoami()
            except ConveyorError as exc:
                identity.problems.append(f"the personal access token does not work: {exc.message}")
        if not direct and not token:
            identity.problems.append(
                "no credential: run `conveyor mcp` in a project folder where `conveyor dev` runs, "
                "or set CONVEYOR_API_URL with CONVEYOR_SECRET_KEY or CONVEYOR_ACCESS_TOKEN "
                "(`conveyor login`)"
            )
        lines = [f"server: {identity.api_url or '-'}", f"credential: {identity.credential}"]
        if identity.environment:
            lines.append(f"environment (of the key): {identity.environment}")
        if identity.user:
            orgs = ", ".join(o.slug for o in identity.user.organizations) or "none"
            lines.append(f"user: {identity.user.name} (organizations: {orgs})")
        if identity.project:
            lines.append(f"project folder config: {identity.project}")
        lines.append(
            f"modes: readonly={identity.readonly} dev_only={identity.dev_only} "
            f"project_ref={identity.project_ref or '-'}"
        )
        lines += [f"problem: {p}" for p in identity.problems]
        return answer(identity, "\n".join(lines))

    async def list_orgs() -> Annotated[CallToolResult, Organizations]:
        """List the organizations of the user (needs a personal access token: `conveyor login`)."""
        with tool_errors():
            user = await access.account().projects.whoami()
        text = (
            "\n".join(f"{o.slug}  {o.name}  role={o.role or '-'}" for o in user.organizations)
            or "No organizations."
        )
        return answer(Organizations(organizations=user.organizations), text)

    async def list_projects() -> Annotated[CallToolResult, Projects]:
        """List the projects of the user's organizations with their environments (needs a personal
        access token: `conveyor login`). With `conveyor dev` there are no accounts:
        use the other tools directly."""
        with tool_errors():
            projects = await access.account().projects.list()
        text = (
            "\n".join(
                f"{p.id}  {p.slug}  org={p.organization}  environments="
                f"{','.join(e.slug for e in p.environments)}"
                for p in projects
            )
            or "No projects yet."
        )
        return answer(Projects(projects=projects), text)

    async def initialize_project(
        directory: Annotated[
            str,
            Field(
                description="The folder to make a Conveyor project, relative to the "
                "working folder of this server"
            ),
        ] = ".",
        project_name: Annotated[
            str | None, Field(description="Name for the project (default: the folder's)")
        ] = None,
        create_on_server: Annotated[
            bool,
            Field(
                description="Also create the project on the Conveyor server "
                "(needs a personal access token)"
            ),
        ] = False,
        organization: Annotated[
            str | None, Field(description="Organization slug, when the user has several")
        ] = None,
    ) -> Annotated[CallToolResult, InitializedProject]:
        """Make a folder a Conveyor project: add [tool.conveyor] to its pyproject.toml (or a
        conveyor.toml) and an example task in tasks/example.py. Do not call it if the folder already
        has a Conveyor config (it refuses and changes nothing). Only create the project on the
        server if the user asked for it."""
        from conveyor.scaffold import PROJECT_NAME, default_project_name, scaffold

        root = (Path.cwd() / directory).resolve()
        if root.exists() and not root.is_dir():
            raise ToolError(f"{directory} is not a folder")
        name = project_name or default_project_name(root)
        server_project: Project | None = None
        with tool_errors():
            if create_on_server:
                server_project = await access.account().projects.create(
                    name, organization=organization
                )
                name = server_project.id
            if not PROJECT_NAME.fullmatch(name):
                raise ToolError(
                    f"project_name must be 1 to 128 letters, digits, '_', '-' or '.', got {name!r}"
                )
            done = scaffold(root, name)
        steps = [
            f"cd {root}",
            "conveyor dev",
            'conveyor trigger hello-world --payload \'{"name": "Ada"}\' --wait',
        ]
        result = InitializedProject(
            directory=str(root),
            project=name,
            created=[str(p) for p in done.created],
            updated=[str(p) for p in done.updated],
            kept=[str(p) for p in done.kept],
            server_project=server_project,
            next_steps=steps,
        )
        text = (
            f"Initialized Conveyor project {name} in {root}\n"
            + "".join(
                f"  {label} {p}\n"
                for label, paths in (
                    ("created", result.created),
                    ("updated", result.updated),
                    ("kept", result.kept),
                )
                for p in paths
            )
            + "Next: "
            + "; ".join(steps)
        )
        return answer(result, text)

    add(server, access, whoami, READ, "Who this Conveyor MCP server acts as")
    add(server, access, list_orgs, READ, "List organizations")
    add(server, access, list_projects, READ, "List projects")
    add(server, access, initialize_project, WRITE, "Initialize a Conveyor project")
