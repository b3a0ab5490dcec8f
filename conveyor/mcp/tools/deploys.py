"""deploy and list_deploys: ship the task code of the project this server runs in to staging,
prod or a preview branch, and list an environment's versions.

`deploy` is `conveyor deploy`: the same release (conveyor/build/release.py: the bundle, its tasks
imported from it in a fresh process, the details), uploaded as a new version with the
AsyncClient and the environment's key. A broken import fails before anything is uploaded. Dev
takes no deploys (`conveyor dev` runs the folder's code), so the tool refuses dev and does
nothing under --dev-only. Nothing here touches the engine.
"""

from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from conveyor.build.release import Release, prepare_release, size_text
from conveyor.config import load_config
from conveyor.errors import ConfigError, NotFound, TaskLoadError
from conveyor.mcp.access import Access, AccessError
from conveyor.mcp.answers import DeployList, DeployOutcome, answer, deploy_line, tool_errors
from conveyor.mcp.tools import READ, EnvironmentArg, ProjectRefArg, add
from conveyor.models import Deployment

DEPLOY_ENVIRONMENTS = ("staging", "prod", "preview")
# destructive (it changes the code new runs start on) and, unlike a cancel, not idempotent: each
# call makes a new version
DEPLOY = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)
DEV_RUNS_LOCAL_CODE = (
    "Dev has no deploys: `conveyor dev` runs the code of the project folder and reloads it on "
    "every save. Deploys go to staging, prod or a preview branch (the deploy tool, or "
    "`conveyor deploy --env prod`)."
)


def _check_target(access: Access, environment: str, branch: str | None) -> None:
    if access.options.dev_only:
        raise ToolError(
            "this MCP server runs with --dev-only: it reaches only dev, which takes no deploys "
            "(`conveyor dev` runs the project folder's code). To deploy, the user runs `conveyor "
            "deploy --env staging|prod|preview`, or starts `conveyor mcp` without --dev-only."
        )
    if environment == "dev":
        raise ToolError(
            DEV_RUNS_LOCAL_CODE
            + " Call deploy with environment 'staging', 'prod', or 'preview' and "
            "a branch."
        )
    if environment.startswith("preview-"):
        raise ToolError(
            "name a preview environment by its git branch: environment='preview', branch='<branch>'"
        )
    if environment not in DEPLOY_ENVIRONMENTS:
        raise ToolError(f"deploy to staging, prod or preview (with branch), not {environment!r}")
    if environment == "preview" and not (branch or "").strip():
        raise ToolError(
            "a preview deploy needs branch: the git branch whose preview environment gets the code"
        )
    if environment != "preview" and branch is not None:
        raise ToolError(f"branch goes only with environment='preview', not with {environment!r}")


def _no_key(
    access: Access, target: str, environment: str, branch: str | None, exc: AccessError
) -> ToolError:
    """The tool error of a deploy this server has no key for,
    saying how the user can give it one."""
    # a token: the problem is the project or the pin, as said
    if access.account_token() is not None:
        return ToolError(f"cannot deploy to {target}: {exc.message}")
    prefix = {"staging": "cv_stg_", "prod": "cv_prod_", "preview": "cv_prev_"}[environment]
    show = f"--env {environment}" + (f" --branch {branch}" if branch else "")
    return ToolError(
        f"cannot deploy to {target}: this MCP server has no key for it. The user can run "
        f"`conveyor login` (the server then fetches the key of the project's {environment}), or "
        f"start `conveyor mcp` with CONVEYOR_API_URL and CONVEYOR_SECRET_KEY={prefix}... "
        f"(`conveyor keys show --project P {show}`). dry_run=true checks the code without a key."
    )


def _outcome(
    environment: str, branch: str | None, release: Release, made: Deployment | None
) -> DeployOutcome:
    return DeployOutcome(
        environment=environment,
        branch=branch,
        dry_run=made is None,
        version=made.version if made else None,
        is_current=made.is_current if made else False,
        tasks=[t.id for t in release.tasks],
        files=release.bundle.files,
        bundle_size=len(release.bundle.data),
        bundle_sha256=release.bundle.sha256,
        deployment=made,
    )


def register(server: MCPServer[Any], access: Access) -> None:
    async def deploy(
        environment: Annotated[
            str,
            Field(
                description="staging, prod or preview (with branch). Not dev: "
                "`conveyor dev` runs the project folder's code."
            ),
        ],
        branch: Annotated[
            str | None,
            Field(
                description="With preview: the git branch whose preview environment "
                "gets the code (made if it does not exist)"
            ),
        ] = None,
        dry_run: Annotated[
            bool,
            Field(
                description="Bundle the code and import its tasks to check them; upload "
                "nothing and need no key"
            ),
        ] = False,
        skip_promotion: Annotated[
            bool, Field(description="Upload the version but keep the current one serving")
        ] = False,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, DeployOutcome]:
        """Deploy the task code of the project this server runs in (its Conveyor config, the
        config's dirs, a lock of its dependencies) to staging, prod or a preview branch, as
        `conveyor deploy` does: import its tasks from the bundle to check them, upload it as a new
        version YYYYMMDD.N and make it current. Runs in flight stay on their version. Returns the
        new version. Only deploy when the user asked for it;
        dry_run=true checks the code without uploading."""
        _check_target(access, environment, branch)
        target = f"preview ({branch})" if branch else environment
        with tool_errors():
            config = load_config(Path.cwd())
            client = None
            # the key first: a deploy that cannot upload says so before building anything
            if not dry_run:
                try:
                    client = await access.deploy_environment(environment, branch, project_ref)
                except AccessError as exc:
                    raise _no_key(access, target, environment, branch, exc) from exc
            steps: list[str] = []
            try:
                release = await anyio.to_thread.run_sync(
                    prepare_release, config, environment, steps.append
                )
            except (TaskLoadError, ConfigError) as exc:
                raise ToolError(
                    f"{exc.message}. Nothing was uploaded; the current version of {target} keeps "
                    "serving. Fix the code (or config) and call deploy again (dry_run=true checks "
                    "it without uploading)."
                ) from exc
            made = None
            if client is not None:
                made = await client.deployments.create(
                    **release.upload_arguments(environment, branch, promote=not skip_promotion)
                )
        lines = [
            f"Deploying {config.project} to {target}{'  (dry run)' if dry_run else ''}",
            *(f"  ✔ {step}" for step in steps),
        ]
        if made is None:
            lines.append("Dry run: nothing was uploaded.")
        else:
            lines.append(
                f"  ✔ uploaded version {made.version} ({size_text(made.bundle_size)}) to "
                f"{made.environment}"
            )
            lines.append(
                f"{made.version} is current: new runs start on it; runs in flight stay on theirs"
                if made.is_current
                else (
                    f"{made.version} is not current (skip_promotion): "
                    f"`conveyor promote {made.version} --env {environment}` makes it so"
                )
            )
        return answer(_outcome(environment, branch, release, made), "\n".join(lines))

    async def list_deploys(
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, DeployList]:
        """List the versions deployed to an environment, newest first: version, status, whether it
        is current (new runs start on it), when it was deployed and last promoted, and its tasks.
        Dev has none: `conveyor dev` runs the project folder's code."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            page = await client.deployments.list(limit=limit, cursor=cursor)
            current = next((d.version for d in page if d.is_current), None)
            if current is None and page.data:  # the current version is on another page
                try:
                    current = (await client.deployments.current()).version
                except NotFound:
                    current = None
        env = access.label(client)
        message = None
        if not page.data and cursor is None:
            message = (
                DEV_RUNS_LOCAL_CODE
                if env == "dev"
                else (
                    f"Nothing is deployed to {env} yet: the deploy tool (or "
                    f"`conveyor deploy --env {env}`) deploys the project's code; until then the "
                    "environment's workers run the code they were started with."
                )
            )
        result = DeployList(
            environment=env,
            current_version=current,
            deploys=page.data,
            next_cursor=page.next_cursor,
            message=message,
        )
        if message is not None:
            text = message
        else:
            text = "\n".join(
                [
                    f"{len(page.data)} versions in {env} (current: {current or 'none'}):",
                    *map(deploy_line, page.data),
                ]
            )
            if page.next_cursor:
                text += f"\nMore: call again with cursor={page.next_cursor}"
        return answer(result, text)

    add(server, access, deploy, DEPLOY, "Deploy the project to an environment")
    add(server, access, list_deploys, READ, "List an environment's deployed versions")
