"""`conveyor alerts create|list|delete|test|deliveries`: an environment's alert channels from a
terminal (docs/alerts.md).

    conveyor alerts create --env prod --on run.failed --webhook https://example.com/hooks/conveyor
    conveyor alerts create --env prod --on queue.backlog --queue emails --backlog 500 --for 5m \\
        --slack https://hooks.slack.com/services/...
    conveyor alerts create --env prod --on deploy.failed --email ops@example.com

The environment is the one of the secret key (`--secret-key`, CONVEYOR_SECRET_KEY, or
`.conveyor/dev.json`), or `--env prod` of the project (`--project`, or the config's) with a
personal access token (`conveyor login`). A webhook's signing secret is printed once, by create.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from conveyor.cli.deploy import (
    environment_client,
    environment_options,
)
from conveyor.cli.options import BadArgument, connection_options, json_option
from conveyor.cli.output import console, plain_rows, print_json, relative_time
from conveyor.models import AlertChannel, AlertDelivery

EVENTS = ["run.failed", "deploy.succeeded", "deploy.failed", "queue.backlog", "worker.fleet_empty"]


@click.group("alerts", no_args_is_help=True)
def alerts() -> None:
    """Send run failures, deploys, queue backlogs and an empty worker fleet to a webhook, Slack
    or email."""


@alerts.command("create")
@click.option("--on", "event", required=True, type=click.Choice(EVENTS), help="The event.")
@click.option("--webhook", metavar="URL", default=None, help="POST a signed JSON body here.")
@click.option("--slack", metavar="URL", default=None, help="A Slack incoming webhook URL.")
@click.option("--email", metavar="ADDR", default=None, help="Email this address (server SMTP).")
@click.option("--task", metavar="TASK", default=None, help="run.failed: only this task.")
@click.option("--queue", metavar="QUEUE", default=None, help="queue.backlog: only this queue.")
@click.option(
    "--backlog",
    type=click.IntRange(0, 10**9),
    default=None,
    metavar="N",
    help="queue.backlog: more than N runs waiting (default 100)...",
)
@click.option(
    "--for",
    "backlog_for",
    metavar="DURATION",
    default=None,
    help="queue.backlog: ... for this long (default 5m; e.g. 30s, 10m).",
)
@click.option(
    "--window",
    metavar="DURATION",
    default=None,
    help="run.failed: failures of one task within this window make one alert (default 60s).",
)
@environment_options
@json_option
@connection_options
def create_alert(
    event: str,
    webhook: str | None,
    slack: str | None,
    email: str | None,
    task: str | None,
    queue: str | None,
    backlog: int | None,
    backlog_for: str | None,
    window: str | None,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Add an alert channel: --on EVENT and one of --webhook, --slack, --email."""
    if sum(v is not None for v in (webhook, slack, email)) != 1:
        raise BadArgument("give one of --webhook URL, --slack URL, --email ADDR")
    with environment_client(env, branch, project, api_url, secret_key) as client:
        made = client.alerts.create(
            event,
            webhook=webhook,
            slack=slack,
            email=email,
            task=task,
            queue=queue,
            backlog=backlog,
            backlog_for=_duration(backlog_for),
            window=_duration(window),
        )
    if as_json:
        print_json(made.model_dump(mode="json"))
        return
    click.echo(f"Created {made.id}: {made.event} → {made.channel} {made.target}")
    if made.secret:
        click.echo(f"Signing secret  {made.secret}")
        click.echo(
            "Shown only this once: check each body's Conveyor-Signature header with "
            "conveyor.webhooks.verify(body, header, secret)."
        )


def _duration(value: str | None) -> float | str | None:
    """A duration as given (the server checks it), a plain number as seconds."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@alerts.command("list")
@environment_options
@json_option
@connection_options
def list_alerts(
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """The environment's alert channels."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        channels = client.alerts.list()
    if as_json:
        print_json([c.model_dump(mode="json") for c in channels])
        return
    render_channels(channels)


@alerts.command("delete")
@click.argument("alert_id")
@environment_options
@json_option
@connection_options
def delete_alert(
    alert_id: str,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Remove a channel and what it was still owed."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        gone = client.alerts.delete(alert_id)
    if as_json:
        print_json(gone.model_dump(mode="json"))
    else:
        click.echo(f"Deleted {gone.id} ({gone.event} → {gone.channel} {gone.target}).")


@alerts.command("test")
@click.argument("alert_id")
@environment_options
@json_option
@connection_options
def test_alert(
    alert_id: str,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Send a channel a test alert now (event alert.test); see `conveyor alerts deliveries`."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        delivery = client.alerts.test(alert_id)
    if as_json:
        print_json(delivery.model_dump(mode="json"))
    else:
        click.echo(f"Sending a test alert ({delivery.id}): `conveyor alerts deliveries` shows it.")


@alerts.command("deliveries")
@click.option("--limit", "-n", type=click.IntRange(1, 500), default=20, show_default=True)
@environment_options
@json_option
@connection_options
def list_deliveries(
    limit: int,
    env: str | None,
    branch: str | None,
    project: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """The latest alerts sent, being gathered, tried again, or failed."""
    with environment_client(env, branch, project, api_url, secret_key) as client:
        deliveries = client.alerts.deliveries(limit=limit)
    if as_json:
        print_json([d.model_dump(mode="json") for d in deliveries])
        return
    render_deliveries(deliveries)


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    out = console()
    if not out.is_terminal:
        plain_rows(headers, rows)
        return
    table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _condition(c: AlertChannel) -> str:
    if c.event == "run.failed":
        return (f"task {c.task}, " if c.task else "") + f"window {c.window_seconds:g}s"
    if c.event == "queue.backlog":
        where = f"queue {c.queue}, " if c.queue else ""
        return f"{where}> {c.backlog} for {c.backlog_for_seconds or 0:g}s"
    return ""


def render_channels(channels: Sequence[AlertChannel]) -> None:
    if not channels:
        console().print(
            "No alert channels. Add one: conveyor alerts create --on run.failed --webhook URL",
            style="dim",
        )
        return
    _table(
        ["ID", "EVENT", "CHANNEL", "TARGET", "WHEN", "CREATED"],
        [
            [c.id, c.event, c.channel, c.target, _condition(c), relative_time(c.created_at)]
            for c in channels
        ],
    )


def render_deliveries(deliveries: Sequence[AlertDelivery]) -> None:
    if not deliveries:
        console().print("No alerts yet.", style="dim")
        return
    _table(
        ["ID", "EVENT", "STATUS", "COUNT", "ATTEMPTS", "CREATED", "LAST ERROR"],
        [
            [
                d.id,
                d.event,
                d.status,
                str(d.count),
                str(d.attempts),
                relative_time(d.created_at),
                (d.last_error or "")[:80],
            ]
            for d in deliveries
        ],
    )
