"""`conveyor env set|unset|list|import`: the environment variables and secrets of an
environment from a terminal (docs/environment-variables.md).

The environment is the one of the secret key (`--secret-key`, CONVEYOR_SECRET_KEY, or
`.conveyor/dev.json`), or `--project P --env prod` with a personal access token
(`conveyor login`). A value is never printed: commands show names and short hashes. Give a
value as `NAME VALUE`, `NAME=VALUE`, or `NAME -` to read it from stdin (out of the shell's
history).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.table import Table

from conveyor.cli.options import (
    BadArgument,
    account_client,
    connection_options,
    json_option,
    open_client,
)
from conveyor.cli.output import console, plain_rows, print_json, relative_time
from conveyor.models import EnvVar

if TYPE_CHECKING:
    from conveyor.client import Client

F = TypeVar("F", bound=Callable[..., Any])


def target_options(fn: F) -> F:
    """`--project` and `--env`: another environment than the secret key's, with a personal
    access token."""
    fn = click.option(
        "--env",
        "env",
        default=None,
        type=click.Choice(["dev", "staging", "prod"]),
        help="The environment (with --project; needs `conveyor login`). Default: the secret key's.",
    )(fn)
    return click.option(
        "--project", "-p", default=None, metavar="PROJECT", help="The project's ref or slug."
    )(fn)


@contextmanager
def _client(
    project: str | None, env: str | None, api_url: str | None, secret_key: str | None
) -> Iterator[Client]:
    if (project is None) != (env is None):
        raise BadArgument("--project and --env go together (or neither: the secret key's)")
    if project is None or env is None:
        with open_client(api_url, secret_key) as client:
            yield client
        return
    from conveyor.client import Client

    with account_client(api_url) as account:
        key = account.projects.key(project, env).secret_key
        url = account.api_url
    with Client(api_url=url, secret_key=key) as client:
        yield client


@click.group("env", no_args_is_help=True)
def env() -> None:
    """Set, unset, list and import an environment's variables and secrets."""


@env.command("list")
@target_options
@connection_options
@json_option
def list_envvars(
    project: str | None,
    env: str | None,
    api_url: str | None,
    secret_key: str | None,
    as_json: bool,
) -> None:
    """The variables: names, short hashes of their values, when each was set (never values)."""
    with _client(project, env, api_url, secret_key) as client:
        listed = client.envvars.list()
    if as_json:
        print_json(listed.model_dump(mode="json"))
        return
    render_envvars(listed.data)


@env.command("set")
@click.argument("assignment", metavar="NAME [VALUE]")
@click.argument("value", required=False, metavar="")
@target_options
@connection_options
@json_option
def set_envvar(
    assignment: str,
    value: str | None,
    project: str | None,
    env: str | None,
    api_url: str | None,
    secret_key: str | None,
    as_json: bool,
) -> None:
    """Set a variable: `NAME VALUE`, `NAME=VALUE`, or `NAME -` (the value from stdin). The
    attempts that start after this see it, without a redeploy."""
    name, value = _assignment(assignment, value)
    with _client(project, env, api_url, secret_key) as client:
        shown = client.envvars.set(name, value)
    if as_json:
        print_json(shown.model_dump(mode="json"))
    else:
        click.echo(f"Set {shown.name} (hash {shown.digest}).")


@env.command("unset")
@click.argument("name")
@target_options
@connection_options
@json_option
def unset_envvar(
    name: str,
    project: str | None,
    env: str | None,
    api_url: str | None,
    secret_key: str | None,
    as_json: bool,
) -> None:
    """Remove a variable; the attempts that start after this no longer have it."""
    with _client(project, env, api_url, secret_key) as client:
        shown = client.envvars.unset(name)
    if as_json:
        print_json(shown.model_dump(mode="json"))
    else:
        click.echo(f"Unset {shown.name}.")


@env.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@target_options
@connection_options
@json_option
def import_envvars(
    path: Path,
    project: str | None,
    env: str | None,
    api_url: str | None,
    secret_key: str | None,
    as_json: bool,
) -> None:
    """Set every variable of a .env file (`NAME=value` lines) in one change; the others stay."""
    with _client(project, env, api_url, secret_key) as client:
        imported = client.envvars.import_(dotenv=path)
    if as_json:
        print_json({"data": [v.model_dump(mode="json") for v in imported]})
    else:
        names = ", ".join(v.name for v in imported)
        click.echo(f"Set {len(imported)} variable{'s' if len(imported) != 1 else ''}: {names}.")


def _assignment(assignment: str, value: str | None) -> tuple[str, str]:
    name = assignment
    if value is None:
        if "=" not in assignment:
            raise BadArgument(f"give a value: {assignment} VALUE, {assignment}=VALUE or {name} -")
        name, value = assignment.split("=", 1)
    elif "=" in assignment:
        raise BadArgument("give NAME VALUE or NAME=VALUE, not both")
    if value == "-":
        value = sys.stdin.read()
        if value.endswith("\n"):  # the newline that ends what was typed or piped
            value = value[:-1]
            value = value.removesuffix("\r")
    return name, value


def render_envvars(items: Sequence[EnvVar]) -> None:
    """`conveyor env list`: one row per variable."""
    out = console()
    if not items:
        out.print("No variables. Set one with `conveyor env set NAME VALUE`.", style="dim")
        return
    headers = ["NAME", "HASH", "UPDATED"]
    rows: list[list[Any]] = [[v.name, v.digest, relative_time(v.updated_at)] for v in items]
    if not out.is_terminal:
        plain_rows(headers, rows)
        return
    table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*row)
    out.print(table)
