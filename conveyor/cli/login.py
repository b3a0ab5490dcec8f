"""`conveyor login`: check a personal access token against a server and keep it for the account
commands (`conveyor projects`, `conveyor keys`) in the user's config file, readable by its
owner alone. The token is never printed.
"""

from __future__ import annotations

import sys

import click

from conveyor.cli.options import BadArgument, json_option, resolve_connection
from conveyor.cli.output import print_json
from conveyor.client.credentials import TOKEN_PREFIX, Logins, login_url


def _ask_token() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Personal access token (cv_pat_...)", hide_input=True))
    return sys.stdin.readline()  # piped: `echo $TOKEN | conveyor login`


def check_token(token: str) -> str:
    token = token.strip()
    if not token:
        raise BadArgument("no token given: pass --token cv_pat_... or type it when asked")
    if not token.startswith(TOKEN_PREFIX):
        if token.startswith("cv_"):
            raise BadArgument(
                "that is an environment's secret key; `conveyor login` takes a personal access "
                "token (cv_pat_...), printed by `conveyor server` at its first start"
            )
        raise BadArgument("a personal access token starts with cv_pat_; check what you pasted")
    return token


@click.command(short_help="Log in to a Conveyor server with a personal access token.")
@click.option(
    "--api-url",
    metavar="URL",
    default=None,
    help="The server, e.g. https://conveyor.example.com. [env: CONVEYOR_API_URL; "
    "default: the server logged in to last, else http://127.0.0.1:3030]",
)
@click.option(
    "--token",
    metavar="cv_pat_...",
    default=None,
    help="The personal access token; asked for (hidden) when not given.",
)
@json_option
def login(api_url: str | None, token: str | None, as_json: bool) -> None:
    """Check a personal access token against the server and store it in
    $XDG_CONFIG_HOME/conveyor/config.json (~/.config/conveyor/config.json), mode 0600, for
    `conveyor projects` and `conveyor keys`. The token is only ever sent to that server."""
    url = login_url(resolve_connection(api_url, None).api_url)
    token = check_token(token if token is not None else _ask_token())
    from conveyor.client import Client

    with Client(api_url=url, secret_key=token) as client:
        user = client.projects.whoami()
    logins = Logins.load()
    logins.remember(url, token)
    path = logins.save()
    if as_json:
        print_json({"api_url": url, "user": user.model_dump(mode="json"), "config": str(path)})
        return
    orgs = ", ".join(o.slug for o in user.organizations) or "none"
    click.echo(
        f"Logged in to {url} as {user.name} (organizations: {orgs}).\nToken stored in {path}."
    )
