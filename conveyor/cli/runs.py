"""`conveyor runs list|show|cancel|replay`: look at runs and act on them from a terminal;
`cancel` and `replay` without a RUN_ID act on every run matching filters (bulk.py).

Each command is one Client call and one view from `conveyor.cli.output`; `--json` prints
the API's own shape for scripts. Errors (unknown run, finished run, unreachable server)
come from the Client as ConveyorError and are shown by `conveyor.cli.main`.
"""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.bulk import bulk_filter_options, has_filters, run_bulk
from conveyor.cli.options import StatusChoice, connection_options, json_option, open_client
from conveyor.cli.output import (
    console,
    print_json,
    render_logs,
    render_run,
    render_run_list,
    run_json,
)


@click.group(no_args_is_help=True)
def runs() -> None:
    """List, inspect, cancel and replay runs."""


@runs.command("list")
@click.option(
    "--status",
    "-s",
    type=StatusChoice(),
    default=None,
    metavar="STATUS",
    help="Only runs in this status (QUEUED, EXECUTING, WAITING, COMPLETED, FAILED, ...).",
)
@click.option("--task", metavar="TASK", default=None, help="Only runs of this task.")
@click.option("--tag", metavar="TAG", default=None, help="Only runs with this tag.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="How many runs per page.",
)
@click.option(
    "--cursor", metavar="CURSOR", default=None, help="Next page, as printed after the previous one."
)
@click.option(
    "--children",
    is_flag=True,
    help="Also list the runs other runs triggered (by default: root runs, "
    "with how many children each has).",
)
@json_option
@connection_options
def list_runs(
    status: str | None,
    task: str | None,
    tag: str | None,
    limit: int,
    cursor: str | None,
    children: bool,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """List root runs, newest first (--children: every run).

    \b
    Examples:
      conveyor runs list --status failed
      conveyor runs list --task hello-world --limit 10 --json
      conveyor runs list --children --task resize-image
    """
    with open_client(api_url, secret_key) as client:
        page = client.runs.list(
            status=status, task=task, tag=tag, limit=limit, cursor=cursor, roots=not children
        )
    if as_json:
        print_json({"data": [run_json(run) for run in page.data], "next_cursor": page.next_cursor})
    else:
        render_run_list(page.data, page.next_cursor, roots=not children)


@runs.command("show")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--logs", "-l", "with_logs", is_flag=True, help="Also print the run's logs.")
@json_option
@connection_options
def show_run(
    run_id: str, with_logs: bool, as_json: bool, api_url: str | None, secret_key: str | None
) -> None:
    """Show one run: status, task, times, attempts, payload, output or error, and logs."""
    with open_client(api_url, secret_key) as client:
        run = client.runs.retrieve(run_id)
        logs = client.runs.logs(run_id) if with_logs else None
    if as_json:
        data = run_json(run)
        if logs is not None:
            data["logs"] = [line.model_dump(mode="json") for line in logs]
        print_json(data)
    else:
        render_run(run, logs)


@runs.command("logs")
@click.argument("run_id", metavar="RUN_ID")
@json_option
@connection_options
def run_logs(run_id: str, as_json: bool, api_url: str | None, secret_key: str | None) -> None:
    """Print a run's logs (every attempt, oldest first)."""
    with open_client(api_url, secret_key) as client:
        logs = client.runs.logs(run_id)
    if as_json:
        print_json([line.model_dump(mode="json") for line in logs])
    else:
        render_logs(logs)


@runs.command("cancel")
@click.argument("run_id", metavar="[RUN_ID]", required=False)
@bulk_filter_options
@json_option
@connection_options
def cancel_run(
    run_id: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
    yes: bool,
    no_wait: bool,
    **filters: Any,
) -> None:
    """Cancel a run that has not ended (its on_cancel hook runs), or, without RUN_ID, every
    unfinished run matching the filters.

    \b
    Examples:
      conveyor runs cancel run_01jd3x...
      conveyor runs cancel --status queued --task send-email --since 1h
      conveyor runs cancel --tag user-42 --yes
    """
    if _bulk(run_id, filters):
        with open_client(api_url, secret_key) as client:
            run_bulk(client, "cancel", filters, yes=yes, no_wait=no_wait, as_json=as_json)
        return
    assert run_id is not None
    with open_client(api_url, secret_key) as client:
        run = client.runs.cancel(run_id)
    if as_json:
        print_json(run_json(run))
        return
    out = console()
    status = getattr(run.status, "value", run.status)
    if status == "CANCELED":
        out.print(f"Canceled [bold]{run.id}[/] ({run.task_id})")
    else:
        out.print(f"Asked [bold]{run.id}[/] to cancel; it is {status} now")


def _bulk(run_id: str | None, filters: dict[str, Any]) -> bool:
    """Whether the command acts on filters (no RUN_ID); a usage error for both or neither."""
    if run_id is not None and has_filters(filters):
        raise click.UsageError("give a RUN_ID or filters (--status, --task, ...), not both")
    if run_id is None and not has_filters(filters):
        raise click.UsageError(
            "give a RUN_ID, or filters of the runs to act on: --status, --task, --tag, "
            "--version, --since (or --all for every run)"
        )
    return run_id is None


@runs.command("replay")
@click.argument("run_id", metavar="[RUN_ID]", required=False)
@bulk_filter_options
@json_option
@connection_options
def replay_run(
    run_id: str | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
    yes: bool,
    no_wait: bool,
    **filters: Any,
) -> None:
    """Start a new run of the same task with the same payload and options, or, without RUN_ID,
    one for every run matching the filters.

    \b
    Examples:
      conveyor runs replay run_01jd3x...
      conveyor runs replay --status failed --task send-email --since 1d
    """
    if _bulk(run_id, filters):
        with open_client(api_url, secret_key) as client:
            run_bulk(client, "replay", filters, yes=yes, no_wait=no_wait, as_json=as_json)
        return
    assert run_id is not None
    with open_client(api_url, secret_key) as client:
        handle = client.runs.replay(run_id)
    if as_json:
        print_json({"id": handle.id, "task_id": handle.task_id, "replayed_from": run_id})
        return
    out = console()
    out.print(f"Replayed {run_id} as [bold]{handle.id}[/]")
    out.print(f"Follow it: conveyor runs show {handle.id} --logs", style="dim")
