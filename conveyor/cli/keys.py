"""`conveyor keys show|rotate`: the secret key of a project's environment, with a personal
access token (`conveyor login`). The key alone goes to stdout, so
`export CONVEYOR_SECRET_KEY=$(conveyor keys show --project shop --env prod)` works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from conveyor.cli.options import BadArgument, account_client, account_options, json_option
from conveyor.models import EnvironmentKey

F = TypeVar("F", bound=Callable[..., Any])


def environment_options(fn: F) -> F:
    fn = click.option(
        "--branch",
        metavar="BRANCH",
        default=None,
        help="The git branch of a preview environment (made if it does not exist yet).",
    )(fn)
    fn = click.option(
        "--env",
        "env",
        required=True,
        type=click.Choice(["dev", "staging", "prod", "preview"]),
        help="The environment.",
    )(fn)
    return click.option(
        "--project",
        "-p",
        required=True,
        metavar="PROJECT",
        help="The project's ref (proj_...) or slug.",
    )(fn)


def _check(env: str, branch: str | None) -> None:
    if env == "preview" and not (branch or "").strip():
        raise BadArgument(
            "--env preview needs --branch NAME: each branch has its own preview environment"
        )
    if env != "preview" and branch is not None:
        raise BadArgument(f"--branch only goes with --env preview, not --env {env}")


def _key(
    project: str, env: str, branch: str | None, api_url: str | None, rotate: bool
) -> EnvironmentKey:
    _check(env, branch)
    with account_client(api_url) as client:
        slug = env if branch is None else client.projects.preview_environment(project, branch).slug
        return (
            client.projects.rotate_key(project, slug)
            if rotate
            else client.projects.key(project, slug)
        )


def _print(key: EnvironmentKey, as_json: bool) -> None:
    if as_json:
        from conveyor.cli.output import print_json

        print_json(key.model_dump(mode="json"))
    else:
        click.echo(key.secret_key)


@click.group(no_args_is_help=True)
def keys() -> None:
    """Show and rotate the secret keys of environments (needs `conveyor login`)."""


@keys.command("show")
@environment_options
@json_option
@account_options
def show_key(
    project: str, env: str, branch: str | None, as_json: bool, api_url: str | None
) -> None:
    """Print the environment's secret key: what CONVEYOR_SECRET_KEY holds for its backends and
    workers (cv_dev_, cv_stg_, cv_prod_ or cv_prev_...)."""
    _print(_key(project, env, branch, api_url, rotate=False), as_json)


@keys.command("rotate")
@environment_options
@json_option
@account_options
def rotate_key(
    project: str, env: str, branch: str | None, as_json: bool, api_url: str | None
) -> None:
    """Make a new secret key for the environment and print it; the old key stops working at once
    (on other servers of the same database within 5 seconds). Give the new key to its workers
    and backends."""
    _print(_key(project, env, branch, api_url, rotate=True), as_json)
