"""`conveyor tokens list|show|complete`: the waitpoint tokens runs wait on, from a terminal.

A human in the loop approves from here: `conveyor tokens complete TOKEN --data '{"approved": true}'`
resumes every run waiting on the token.
"""

from __future__ import annotations

import click

from conveyor.cli.options import connection_options, json_option, open_client
from conveyor.cli.output import console, print_json, relative_time, timestamp
from conveyor.cli.trigger import parse_payload
from conveyor.models import Token


@click.group(no_args_is_help=True)
def tokens() -> None:
    """List, inspect and complete waitpoint tokens."""


def _token_json(token: Token) -> dict[str, object]:
    return token.model_dump(mode="json")


@tokens.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "completed", "timed_out"], case_sensitive=False),
    default=None,
    help="Only tokens in this state.",
)
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@connection_options
def list_tokens(
    status: str | None, limit: int, as_json: bool, api_url: str | None, secret_key: str | None
) -> None:
    """List tokens, newest first (`--status pending`: the ones runs may be waiting on)."""
    with open_client(api_url, secret_key) as client:
        found = client.waitpoints.list_tokens(
            status=status.upper() if status else None, limit=limit
        )
    if as_json:
        # the shape of `runs list --json` and of the API
        print_json({"data": [_token_json(t) for t in found], "next_cursor": found.next_cursor})
        return
    out = console()
    if not found:
        out.print("No tokens.")
        return
    for token in found:
        timeout = (
            f"  times out {relative_time(token.timeout_at)}"
            if token.timeout_at and token.status == "PENDING"
            else ""
        )
        tags = f"  tags {', '.join(token.tags)}" if token.tags else ""
        out.print(
            f"{token.id}  {token.status:<9} created "
            f"{relative_time(token.created_at)}{timeout}{tags}",
            highlight=False,
        )


@tokens.command("show")
@click.argument("token_id")
@json_option
@connection_options
def show_token(token_id: str, as_json: bool, api_url: str | None, secret_key: str | None) -> None:
    """A token's state, its callback URL, and what it was completed with."""
    with open_client(api_url, secret_key) as client:
        token = client.waitpoints.retrieve_token(token_id)
    if as_json:
        print_json(_token_json(token))
        return
    out = console()
    out.print(
        f"Token      {token.id}\nStatus     {token.status}\n"
        f"Created    {timestamp(token.created_at)}",
        highlight=False,
    )
    if token.timeout_at:
        out.print(f"Times out  {timestamp(token.timeout_at)}", highlight=False)
    if token.url:
        out.print(f"URL        {token.url}", highlight=False)
    if token.status != "PENDING":
        out.print(
            f"Output     {token.output!r}"
            if token.status == "COMPLETED"
            else f"Error      {token.error}",
            highlight=False,
        )


@tokens.command("complete")
@click.argument("token_id")
@click.option(
    "--data",
    "-d",
    default="null",
    show_default=True,
    metavar="JSON",
    help="What the waiting runs get as the token's output: JSON, @file.json or @- for stdin.",
)
@json_option
@connection_options
def complete_token(
    token_id: str, data: str, as_json: bool, api_url: str | None, secret_key: str | None
) -> None:
    """Complete a token: every run waiting on it resumes with DATA as the output."""
    value = parse_payload(data, option="--data")
    with open_client(api_url, secret_key) as client:
        token = client.waitpoints.complete_token(token_id, value)
    if as_json:
        print_json(_token_json(token))
    else:
        console().print(f"Completed {token.id}: runs waiting on it resume.", highlight=False)
