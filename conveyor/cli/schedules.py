"""`conveyor schedules list|show|create|update|delete|activate|deactivate`: cron schedules of
scheduled tasks from a terminal (docs/schedules.md).

Each command is one Client call and one view; `--json` prints the API's own shape for scripts.
Errors (a bad cron, an unknown time zone or task, an unreachable server) come from the Client
as ConveyorError and are shown in one line by `conveyor.cli.main`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from conveyor.cli.options import connection_options, json_option, open_client
from conveyor.cli.output import (
    console,
    plain_rows,
    print_json,
    relative_time,
    status_text,
    timestamp,
)
from conveyor.cron import local
from conveyor.models import Schedule


def schedule_options(fn: Any) -> Any:
    """The settings create and update share."""
    for option in reversed(
        [
            click.option("--task", metavar="TASK", default=None, help="A scheduled task's id."),
            click.option(
                "--cron",
                metavar="EXPR",
                default=None,
                help='Five fields, minute hour day-of-month month day-of-week ("0 9 * * 1"), '
                'or a shorthand such as "@daily".',
            ),
            click.option(
                "--timezone",
                "--tz",
                "timezone",
                metavar="ZONE",
                default=None,
                help="IANA time zone the cron is read in (default UTC), e.g. Europe/Paris.",
            ),
            click.option(
                "--external-id", metavar="ID", default=None, help="Yours: a customer or user id."
            ),
            click.option(
                "--catch-up",
                type=click.Choice(["latest", "none"]),
                default=None,
                help="After downtime: one run for the latest missed time (default), or none.",
            ),
            click.option(
                "--overlap",
                type=click.Choice(["allow", "skip"]),
                default=None,
                help="skip: no run while the schedule's previous run still runs (default allow).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.group(no_args_is_help=True)
def schedules() -> None:
    """List, inspect, create and change cron schedules of scheduled tasks."""


@schedules.command("list")
@click.option("--task", metavar="TASK", default=None, help="Only this task's schedules.")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["declarative", "imperative"], case_sensitive=False),
    default=None,
    help="declarative: from the code; imperative: made through the API.",
)
@click.option("--external-id", metavar="ID", default=None, help="Only this external id's.")
@click.option(
    "--active/--inactive", "active", default=None, help="Only active (or inactive) schedules."
)
@click.option(
    "--limit", "-n", type=click.IntRange(1, 500), default=50, show_default=True,
    help="How many per page.",
)  # fmt: skip
@click.option(
    "--cursor", metavar="CURSOR", default=None, help="Next page, as printed after the previous one."
)
@json_option
@connection_options
def list_schedules(
    task: str | None,
    kind: str | None,
    external_id: str | None,
    active: bool | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """List schedules, newest first.

    \b
    Examples:
      conveyor schedules list
      conveyor schedules list --task send-digest --external-id user-42
      conveyor schedules list --type declarative --json
    """
    with open_client(api_url, secret_key) as client:
        page = client.schedules.list(
            task=task,
            external_id=external_id,
            type=kind.upper() if kind else None,
            active=active,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        print_json(
            {"data": [_json(s) for s in page.data], "next_cursor": page.next_cursor},
        )
    else:
        render_schedule_list(page.data, page.next_cursor)


@schedules.command("show")
@click.argument("schedule_id", metavar="SCHEDULE_ID")
@json_option
@connection_options
def show_schedule(
    schedule_id: str, as_json: bool, api_url: str | None, secret_key: str | None
) -> None:
    """Show a schedule: its cron in words, next five fire times and latest fires."""
    with open_client(api_url, secret_key) as client:
        schedule = client.schedules.retrieve(schedule_id)
    if as_json:
        print_json(_json(schedule))
    else:
        render_schedule(schedule)


@schedules.command("create")
@schedule_options
@click.option(
    "--deduplication-key",
    metavar="KEY",
    default=None,
    help="Creating again with the same key updates that schedule instead of making another.",
)
@click.option("--inactive", is_flag=True, help="Create it deactivated.")
@json_option
@connection_options
def create_schedule(
    task: str | None,
    cron: str | None,
    timezone: str | None,
    external_id: str | None,
    catch_up: str | None,
    overlap: str | None,
    deduplication_key: str | None,
    inactive: bool,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Create a schedule of a scheduled task (--task and --cron are needed).

    \b
    Examples:
      conveyor schedules create --task send-digest --cron "0 9 * * 1" --tz America/New_York \\
          --external-id user-42 --deduplication-key user-42-digest
      conveyor schedules create --task cleanup --cron @hourly --overlap skip
    """
    missing = [name for name, value in (("--task", task), ("--cron", cron)) if not value]
    if missing:
        raise click.UsageError(f"create needs {' and '.join(missing)}")
    assert task is not None and cron is not None
    with open_client(api_url, secret_key) as client:
        schedule = client.schedules.create(
            task=task,
            cron=cron,
            timezone=timezone or "UTC",
            external_id=external_id,
            deduplication_key=deduplication_key,
            active=not inactive,
            catch_up=catch_up or "latest",
            overlap=overlap or "allow",
        )
    if as_json:
        print_json(_json(schedule))
        return
    _said(schedule, "Scheduled")


@schedules.command("update")
@click.argument("schedule_id", metavar="SCHEDULE_ID")
@schedule_options
@json_option
@connection_options
def update_schedule(
    schedule_id: str,
    task: str | None,
    cron: str | None,
    timezone: str | None,
    external_id: str | None,
    catch_up: str | None,
    overlap: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Change an imperative schedule; what is not given stays."""
    given = {
        "task": task,
        "cron": cron,
        "timezone": timezone,
        "external_id": external_id,
        "catch_up": catch_up,
        "overlap": overlap,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        raise click.UsageError(
            "update needs at least one of --task, --cron, --timezone, --external-id, "
            "--catch-up, --overlap"
        )
    with open_client(api_url, secret_key) as client:
        schedule = client.schedules.update(schedule_id, **changes)
    if as_json:
        print_json(_json(schedule))
        return
    _said(schedule, "Updated")


def _action(name: str, verb: str, help_text: str) -> None:
    @schedules.command(name, help=help_text)
    @click.argument("schedule_id", metavar="SCHEDULE_ID")
    @json_option
    @connection_options
    def command(
        schedule_id: str, as_json: bool, api_url: str | None, secret_key: str | None
    ) -> None:
        with open_client(api_url, secret_key) as client:
            schedule = getattr(client.schedules, name)(schedule_id)
        if as_json:
            print_json(_json(schedule))
            return
        _said(schedule, verb)


_action("activate", "Activated", "Fire again from the next fire time on.")
_action("deactivate", "Deactivated", "Stop firing until activated again.")
_action(
    "delete",
    "Deleted",
    "Remove an imperative schedule; the runs it made stay. "
    "A declarative one changes with its code.",
)


# -- views ------------------------------------------------------------------------------------


def _json(schedule: Schedule) -> dict[str, Any]:
    return schedule.model_dump(mode="json", exclude_none=False)


def _said(schedule: Schedule, verb: str) -> None:
    out = console()
    out.print(
        f"{verb} [bold]{schedule.id}[/] ({schedule.task}): {schedule.cron} "
        f"[dim]{schedule.cron_description}, {schedule.timezone}[/]",
        soft_wrap=True,
    )
    if verb != "Deleted":
        out.print(f"Next: {_next(schedule)}", style="dim")


def _next(schedule: Schedule) -> str:
    if not schedule.active:
        return "inactive"
    if schedule.next_fire_at is None:
        return "never"
    at = local(schedule.next_fire_at.timestamp(), schedule.timezone)
    return f"{at:%Y-%m-%d %H:%M %Z} ({relative_time(schedule.next_fire_at)})"


def render_schedule_list(items: Sequence[Schedule], next_cursor: str | None) -> None:
    """`conveyor schedules list`: one row per schedule."""
    out = console()
    if not items:
        out.print(
            'No schedules. Declare one with @schedules.task(id=..., cron="0 6 * * *") or make '
            'one with `conveyor schedules create --task TASK --cron "0 9 * * 1"`.',
            style="dim",
        )
        return
    headers = ["ID", "TASK", "CRON", "TIMEZONE", "NEXT", "TYPE", "EXTERNAL ID"]
    rows: list[list[str | Text]] = [
        [
            s.id,
            s.task,
            s.cron,
            s.timezone,
            Text(_next(s), style="" if s.active else "dim"),
            s.type.lower(),
            s.external_id or "",
        ]
        for s in items
    ]
    if not out.is_terminal:
        plain_rows(headers, rows)
    else:
        table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
        for header in headers:
            table.add_column(header, no_wrap=True, overflow="ellipsis")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if next_cursor:
        out.print(f"\nMore schedules: conveyor schedules list --cursor {next_cursor}", style="dim")


def render_schedule(schedule: Schedule) -> None:
    """`conveyor schedules show`: the facts, the next fire times and the latest fires."""
    out = console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("Schedule", schedule.id)
    facts.add_row("Task", schedule.task)
    facts.add_row(
        "Type",
        schedule.type.lower()
        + (" (changes with the code)" if schedule.type == "DECLARATIVE" else ""),
    )
    facts.add_row("Cron", f"{schedule.cron}  [dim]{schedule.cron_description}[/]")
    facts.add_row("Time zone", schedule.timezone)
    facts.add_row("Active", "yes" if schedule.active else "no")
    facts.add_row("Catch up", schedule.catch_up)
    facts.add_row("Overlap", schedule.overlap)
    if schedule.external_id:
        facts.add_row("External id", schedule.external_id)
    if schedule.deduplication_key:
        facts.add_row("Dedup key", schedule.deduplication_key)
    facts.add_row("Last fired", timestamp(schedule.last_fired_at))
    out.print(facts)
    if schedule.upcoming:
        out.print("\n[bold]Next fire times[/]")
        for at in schedule.upcoming:
            here = local(at.timestamp(), schedule.timezone)
            out.print(f"  {here:%Y-%m-%d %H:%M %Z}  [dim]{timestamp(at)}[/]")
    fires = schedule.recent_fires or []
    out.print("\n[bold]Latest fires[/]" if fires else "\n[dim]It has not fired yet.[/]")
    for fire in fires:
        line = Text(f"  {fire.timestamp:%Y-%m-%d %H:%M:%S} UTC  ")
        if fire.outcome == "triggered":
            line.append(f"{fire.run_id}  ")
            line.append_text(status_text(fire.run_status or "-"))
        else:
            line.append(f"{fire.outcome}: {fire.message or ''}", style="yellow")
        out.print(line)
