"""`conveyor deploy`, `conveyor deploys list`, `conveyor promote VERSION`: ship the task code to
staging, prod or a preview branch, see the versions, and choose the current one (promoting an
older version is a rollback).

A deploy prepares a release (conveyor/build/release.py: the bundle, and its tasks imported from
the bundle itself in a fresh process, so that a broken import fails here, before anything is
uploaded), then uploads it as version YYYYMMDD.N and promotes it. A failed step leaves the
current version serving. The MCP deploy tool goes through the same release.

The environment's key comes from --secret-key / CONVEYOR_SECRET_KEY; without one, from the
personal access token of `conveyor login`, for the config's project (or --project) and --env.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli.options import (
    BadArgument,
    connection_options,
    json_option,
    project_dir_option,
    resolve_connection,
)
from conveyor.cli.output import print_json, relative_time
from conveyor.config import load_config
from conveyor.errors import ConveyorError
from conveyor.models import Deployment

if TYPE_CHECKING:
    from conveyor.client import Client

ENVIRONMENTS = ("staging", "prod", "preview")


def check_environment(env: str | None, branch: str | None) -> None:
    if env == "preview" and not (branch or "").strip():
        raise BadArgument(
            "--env preview needs --branch NAME: each branch has its own preview environment"
        )
    if env != "preview" and branch is not None:
        raise BadArgument(f"--branch only goes with --env preview, not --env {env}")


def environment_settings(
    env: str | None,
    branch: str | None,
    project: str | None,
    api_url: str | None,
    secret_key: str | None,
) -> tuple[str | None, str | None]:
    """(api_url, key) of the environment: the key given (--secret-key, CONVEYOR_SECRET_KEY),
    else the one fetched with the `conveyor login` token for `project` and `env`; None leaves
    the rest to the client's own defaults."""
    from conveyor.cli.options import account_client

    connection = resolve_connection(api_url, secret_key)
    key = connection.secret_key or os.environ.get("CONVEYOR_SECRET_KEY")
    if key is not None or env is None:
        return connection.api_url, key
    if project is None:
        raise BadArgument(
            "name the project with --project (or run in the project's folder), or pass the "
            "environment's key with --secret-key"
        )
    with account_client(connection.api_url) as account:
        slug = (
            account.projects.preview_environment(project, branch).slug
            if env == "preview" and branch
            else env
        )
        return account.api_url, account.projects.key(project, slug).secret_key


@contextmanager
def environment_client(
    env: str | None,
    branch: str | None,
    project: str | None,
    api_url: str | None,
    secret_key: str | None,
) -> Iterator[Client]:
    """A Client with the key of the environment (see `environment_settings`); `project` defaults
    to the one of the conveyor project here."""
    from conveyor.client import Client

    if env:
        check_environment(env, branch)
    url, key = environment_settings(env, branch, config_project(project), api_url, secret_key)
    client = Client(api_url=url, secret_key=key)
    try:
        yield client
    finally:
        client.close()


def _report_failure(
    url: str | None, key: str | None, env: str, branch: str | None, error: str
) -> None:
    """Tell the server the deploy failed here, for its deploy.failed alerts; a failure to tell it
    is no reason to hide the deploy's own error."""
    from conveyor.client import Client

    try:
        with Client(api_url=url, secret_key=key, timeout=10) as client:
            client.deployments.report_failure(
                environment=env, branch=branch, error=error, details={"stage": "build"}
            )
    except ConveyorError:
        pass


def _step(text: str) -> None:
    click.echo(click.style("  ✔ ", fg="green") + text)


@click.command(short_help="Deploy the task code to staging, prod or a preview branch.")
@click.option(
    "--env",
    "env",
    required=True,
    type=click.Choice(ENVIRONMENTS),
    help="The environment to deploy to.",
)
@click.option(
    "--branch",
    metavar="NAME",
    default=None,
    help="With --env preview: the branch's preview environment.",
)
@click.option(
    "--skip-promotion",
    is_flag=True,
    help="Upload the version but keep the current one serving "
    "(promote it later with `conveyor promote`).",
)
@click.option(
    "--dry-run", is_flag=True, help="Build the bundle and import its tasks, upload nothing."
)
@click.option(
    "--project",
    "-p",
    metavar="PROJECT",
    default=None,
    help=(
        "Project ref or slug, to fetch the key with `conveyor login` (default: the config's "
        "project)."
    ),
)
@project_dir_option
@json_option
@connection_options
def deploy(
    env: str,
    branch: str | None,
    skip_promotion: bool,
    dry_run: bool,
    project: str | None,
    project_dir: Path | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Bundle the task code of this project (the config's dirs, the config, and a lock of its
    dependencies), import its tasks from the bundle to check them, upload it as a new version
    YYYYMMDD.N and make it current. Runs in flight stay on the version they started on; runs
    waiting in PENDING_VERSION for a task the version defines start.

    \b
    Examples:
      conveyor deploy --env prod
      conveyor deploy --env preview --branch feature-login
      conveyor deploy --env staging --skip-promotion
    """
    check_environment(env, branch)
    from conveyor.build.release import prepare_release, size_text

    config = load_config(project_dir or Path.cwd())
    config.check_dirs()
    # the key first: a deploy that cannot upload should say so before building anything
    url, key = (
        (None, None)
        if dry_run
        else environment_settings(env, branch, project or config.project, api_url, secret_key)
    )
    target = f"{env} ({branch})" if branch else env
    if not as_json:
        click.echo(f"Deploying {config.project} to {target}" + ("  (dry run)" if dry_run else ""))
    try:
        release = prepare_release(config, env, (lambda text: None) if as_json else _step)
    except ConveyorError as exc:
        if not dry_run:  # the environment's deploy.failed alerts (docs/alerts.md)
            _report_failure(url, key, env, branch, str(exc))
        raise
    if dry_run:
        if as_json:
            print_json({"dry_run": True, **release.summary()})
        else:
            click.echo("Dry run: nothing was uploaded.")
        return
    from conveyor.client import Client

    with Client(api_url=url, secret_key=key) as client:
        made = client.deployments.create(
            **release.upload_arguments(env, branch, promote=not skip_promotion)
        )
    if as_json:
        print_json(made.model_dump(mode="json"))
        return
    _step(
        f"uploaded version {click.style(made.version, bold=True)} ({size_text(made.bundle_size)})"
    )
    if made.is_current:
        _step(f"{made.version} is current: new runs start on it; runs in flight stay on theirs")
    else:
        click.echo(
            f"  {made.version} is not current (--skip-promotion): `conveyor promote {made.version} "
            f"--env {env}` makes it so"
        )


def _line(d: Deployment) -> str:
    mark = "*" if d.is_current else " "
    commit = (
        (d.details.get("git") or {}).get("commit", "")[:8]
        if isinstance(d.details.get("git"), dict)
        else ""
    )
    return (
        f"{mark} {d.version:<14} {len(d.tasks):>5}  {relative_time(d.created_at):<16} "
        f"{relative_time(d.promoted_at) if d.promoted_at else '-':<16} {commit}"
    )


def environment_options(fn: Any) -> Any:
    fn = click.option(
        "--project",
        "-p",
        metavar="PROJECT",
        default=None,
        help="Project ref or slug, to fetch the key with `conveyor login` (default: the config's).",
    )(fn)
    fn = click.option(
        "--branch", metavar="NAME", default=None, help="With --env preview: the branch."
    )(fn)
    return click.option(
        "--env",
        "env",
        type=click.Choice(ENVIRONMENTS),
        default=None,
        help="The environment (needed to fetch its key with `conveyor login`).",
    )(fn)


def config_project(project: str | None) -> str | None:
    if project is not None:
        return project
    try:
        return load_config(Path.cwd()).project
    except Exception:  # no project here: only an explicit key or --project can help
        return None


@click.group(no_args_is_help=True)
def deploys() -> None:
    """The versions deployed to an environment."""


@deploys.command("list")
@click.option("--limit", "-n", type=click.IntRange(1, 100), default=20, show_default=True)
@environment_options
@json_option
@connection_options
def list_deploys(
    limit: int,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """List the environment's versions, newest first; * marks the current one."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        page = client.deployments.list(limit=limit)
    if as_json:
        print_json([d.model_dump(mode="json") for d in page])
        return
    if not page.data:
        click.echo("Nothing deployed yet: conveyor deploy --env prod")
        return
    click.echo(f"  {'VERSION':<14} {'TASKS':>5}  {'DEPLOYED':<16} {'PROMOTED':<16} COMMIT")
    for d in page:
        click.echo(_line(d))


@click.command(short_help="Make a version current (an older one: a rollback).")
@click.argument("version")
@environment_options
@json_option
@connection_options
def promote(
    version: str,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Make VERSION (YYYYMMDD.N, see `conveyor deploys list`) the one new runs start on.
    Promoting an older version rolls back; runs already started keep their version."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        made = client.deployments.promote(version)
    if as_json:
        print_json(made.model_dump(mode="json"))
    else:
        click.echo(f"{made.version} is current in {made.environment}: new runs start on it")
