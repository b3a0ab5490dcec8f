"""`conveyor runs cancel|replay` by filter (no RUN_ID): count the runs that match, ask, start a
bulk action, and show its progress until the platform has handled every run.

The filters are the options `bulk_filter_options` adds; the action itself is the server's (the
Client's `runs.bulk_cancel` / `runs.bulk_replay`), so a Ctrl-C here stops only the display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conveyor.cli.options import StatusChoice
from conveyor.cli.output import console, print_json
from conveyor.models import BulkAction

F = TypeVar("F", bound=Callable[..., Any])
POLL = 0.5  # seconds between progress reads
FILTERS = ("status", "task", "tag", "version", "since", "all_runs")


def bulk_filter_options(fn: F) -> F:
    """The filters of a bulk cancel or replay, and --yes / --no-wait."""
    options = [
        click.option(
            "--status",
            "-s",
            type=StatusChoice(),
            multiple=True,
            metavar="STATUS",
            help="Without RUN_ID: runs in this status (repeat it for several).",
        ),
        click.option("--task", metavar="TASK", default=None, help="Without RUN_ID: runs of TASK."),
        click.option("--tag", metavar="TAG", default=None, help="Without RUN_ID: runs tagged TAG."),
        click.option(
            "--version",
            "version",
            metavar="VERSION",
            default=None,
            help="Without RUN_ID: runs of this deployed version.",
        ),
        click.option(
            "--since",
            metavar="DURATION",
            default=None,
            help='Without RUN_ID: runs created in the last DURATION ("1h", "2d").',
        ),
        click.option(
            "--all",
            "all_runs",
            is_flag=True,
            help="Without RUN_ID and filters: every run of the environment.",
        ),
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
        click.option(
            "--no-wait", is_flag=True, help="Start the bulk action and return; do not follow it."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def has_filters(filters: dict[str, Any]) -> bool:
    return any(filters.get(name) for name in FILTERS)


def run_bulk(
    client: Any,
    kind: str,
    filters: dict[str, Any],
    *,
    yes: bool,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Count, confirm, start and follow a bulk `kind` ("cancel" or "replay")."""
    given = {
        "status": list(filters["status"]) or None,
        "task": filters["task"],
        "tag": filters["tag"],
        "version": filters["version"],
        "since": filters["since"],
        "all": filters["all_runs"],
    }
    matched = client.runs.bulk_count(kind, **given)
    noun = "unfinished run" if kind == "cancel" else "run"
    out = console()
    if not matched:
        if as_json:
            print_json({"kind": kind, "matched": 0})
        else:
            out.print(f"No {noun}s match; nothing to {kind}.")
        return
    what = f"{matched} {noun}{'s' if matched != 1 else ''}"
    if not yes:
        # the question goes to stderr, so --json output stays one document
        if not click.confirm(f"{kind.capitalize()} {what}?", err=True):
            click.echo("Nothing changed.", err=True)
            raise SystemExit(1)
    action: BulkAction = (
        client.runs.bulk_cancel(**given) if kind == "cancel" else client.runs.bulk_replay(**given)
    )
    if not no_wait:
        action = _follow(client, action, quiet=as_json)
    if as_json:
        print_json(action.model_dump(mode="json"))
        return
    if no_wait:
        out.print(f"Started bulk {kind} [bold]{action.id}[/] of {what}")
        return
    _summary(action)


def _follow(client: Any, action: BulkAction, *, quiet: bool) -> BulkAction:
    """Read the action's progress until it ends: a bar on a terminal, a line per change when
    piped, nothing with `quiet`."""
    out = console()
    try:
        if quiet or not out.is_terminal:
            last = -1
            while not action.is_final:
                if not quiet and action.processed != last:
                    last = action.processed
                    out.print(f"{action.id}: {action.processed} of {action.total} runs")
                time.sleep(POLL)
                action = client.runs.bulk_action(action.id)
            return action
        with Progress(
            TextColumn(f"{action.kind.capitalize()}ing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
        ) as progress:
            bar = progress.add_task(action.kind, total=action.total)
            while not action.is_final:
                time.sleep(POLL)
                action = client.runs.bulk_action(action.id)
                progress.update(bar, completed=action.processed, total=max(action.total, 1))
            progress.update(bar, completed=action.processed)
        return action
    except KeyboardInterrupt:
        raise click.ClickException(
            f"stopped following bulk action {action.id}; it goes on in the platform "
            f"(GET /api/v1/bulk-actions/{action.id}, stop it with POST .../cancel)"
        ) from None


def _summary(action: BulkAction) -> None:
    out = console()
    verb = "Canceled" if action.kind == "cancel" else "Replayed"
    parts = [f"{verb} {action.done} run{'s' if action.done != 1 else ''}"]
    if action.skipped:
        parts.append(f"{action.skipped} had ended already")
    if action.failed:
        parts.append(f"{action.failed} could not be replayed ({action.error})")
    status = "" if action.status == "COMPLETED" else f" [yellow]{action.status}[/]"
    out.print(f"{', '.join(parts)} [dim]({action.id})[/]{status}")
