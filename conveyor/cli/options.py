"""Options shared by the commands that talk to a Conveyor server, and the clients they open.

`--api-url` and `--secret-key` may be given on the group (`conveyor --api-url ... runs list`)
or on the command (`conveyor runs list --api-url ...`); the command's value wins. Anything
left unset is resolved by the client itself: CONVEYOR_API_URL / CONVEYOR_SECRET_KEY, then
`.conveyor/dev.json` found upwards from the current folder. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from conveyor.models import RunStatus

if TYPE_CHECKING:
    from conveyor.client import Client

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class Connection:
    """Where the CLI sends its requests; None means "let the client decide"."""

    api_url: str | None = None
    secret_key: str | None = None


def connection_options(fn: F) -> F:
    """Add `--api-url` and `--secret-key` to a command (or to the group)."""
    fn = click.option(
        "--secret-key",
        metavar="KEY",
        default=None,
        help="API key of the environment. [env: CONVEYOR_SECRET_KEY]",
    )(fn)
    fn = click.option(
        "--api-url",
        metavar="URL",
        default=None,
        help="Conveyor server, e.g. http://127.0.0.1:3030. [env: CONVEYOR_API_URL]",
    )(fn)
    return fn


def account_options(fn: F) -> F:
    """Add `--api-url` to an account command (projects, keys);
    its token comes from `conveyor login`."""
    return click.option(
        "--api-url",
        metavar="URL",
        default=None,
        help="The server (default: CONVEYOR_API_URL, else the one you logged in to last).",
    )(fn)


def json_option(fn: F) -> F:
    """Add `--json`: print machine-readable JSON on stdout instead of tables."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        help="Print JSON for scripts instead of tables.",
    )(fn)


def resolve_connection(api_url: str | None, secret_key: str | None) -> Connection:
    """The command's own values over the group's (stored on the context by `main`)."""
    ctx = click.get_current_context()
    group = ctx.find_object(Connection) or Connection()
    return Connection(api_url=api_url or group.api_url, secret_key=secret_key or group.secret_key)


@contextmanager
def open_client(api_url: str | None, secret_key: str | None) -> Iterator[Client]:
    """A synchronous Client for one command, closed when the command ends."""
    from conveyor.client import Client

    connection = resolve_connection(api_url, secret_key)
    client = Client(api_url=connection.api_url, secret_key=connection.secret_key)
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()


@contextmanager
def account_client(api_url: str | None) -> Iterator[Client]:
    """A Client sending the personal access token for the server (conveyor/client/credentials.py),
    closed afterwards. The command's --api-url wins over the group's."""
    from conveyor.client import Client
    from conveyor.client.credentials import account_settings

    url, token = account_settings(resolve_connection(api_url, None).api_url)
    client = Client(api_url=url, secret_key=token)
    try:
        yield client
    finally:
        client.close()


class BadArgument(click.UsageError):
    """A command-line value that cannot be used; shown as one line, exit 2,
    without the --help hint."""


def project_dir_option(fn: F) -> F:
    """Add `--dir`: the project folder, else the current folder or its nearest configured parent."""
    return click.option(
        "--dir",
        "project_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None,
        help="Project folder (default: the current folder or the nearest parent "
        "with a Conveyor config).",
    )(fn)


def worker_options(fn: F) -> F:
    """Add the options of a process that runs tasks: `--executors`, `--capacity`, `--quiet`."""
    fn = click.option("--quiet", is_flag=True, help="Do not print a line per run.")(fn)
    fn = click.option(
        "--capacity",
        type=click.IntRange(1, 10_000),
        default=500,
        show_default=True,
        help="Attempts the worker runs at once.",
    )(fn)
    return click.option(
        "--executors",
        type=click.IntRange(1, 64),
        default=None,
        help="Executor processes for the default machine (default: one per CPU, at least 2).",
    )(fn)


class StatusChoice(click.ParamType):
    """A run status, any case: `--status failed` means FAILED."""

    name = "status"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip().upper().replace("-", "_")
        if text not in RunStatus.__members__:
            self.fail(
                f"{value!r} is not a run status; one of {', '.join(RunStatus.__members__)}",
                param,
                ctx,
            )
        return text
