"""How the CLI shows things: run tables, one run in detail, logs, statuses in color,
relative times, and `--json` for scripts.

Tables and colors go through rich on stdout; `--json` output is plain JSON, one document
per command, so `conveyor runs list --json | jq` works. Errors never come through here:
they are one line on stderr, written by `conveyor.cli.main`. Nothing here talks to a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from conveyor.models import LogLine, Run

STATUS_STYLES: dict[str, str] = {
    "PENDING_VERSION": "yellow",
    "DELAYED": "cyan",
    "QUEUED": "yellow",
    "DEQUEUED": "yellow",
    "EXECUTING": "bold blue",
    "WAITING": "magenta",
    "COMPLETED": "bold green",
    "FAILED": "bold red",
    "CANCELED": "dim",
    "CRASHED": "bold red",
    "SYSTEM_FAILURE": "bold red",
    "TIMED_OUT": "bold red",
    "EXPIRED": "dim red",
}
LEVEL_STYLES: dict[str, str] = {
    "debug": "dim",
    "info": "",
    "log": "",
    "warn": "yellow",
    "error": "red",
}


def console() -> Console:
    """A console on the current stdout (looked up at call time, so test runners capture it)."""
    return Console(highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def run_json(run: Run) -> dict[str, Any]:
    """A run as plain JSON, the same shape as the HTTP API's."""
    return run.model_dump(mode="json")


def status_text(status: Any) -> Text:
    """A run status in its color: green done, red failed, yellow queued, blue running."""
    name = str(getattr(status, "value", status))
    return Text(name, style=STATUS_STYLES.get(name, ""))


def relative_time(moment: datetime | None, now: datetime | None = None) -> str:
    """'12s ago', '3m ago', 'in 2h', or '-' for no time."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    text = duration_text(abs(seconds), precise=False)
    return f"{text} ago" if seconds > 0 else f"in {text}"


def duration_text(seconds: float | None, *, precise: bool = True) -> str:
    """A span of time for people: '850ms', '4.2s', '3m 12s', '2h 5m', '3d 4h'."""
    if seconds is None:
        return "-"
    if seconds < 1 and precise:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if precise and seconds < 10 else f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if precise and secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def timestamp(moment: datetime | None) -> str:
    """An absolute time with its relative form: '2025-01-02 10:11:12 UTC (3m ago)'."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({relative_time(moment)})"


def run_duration(run: Run) -> float | None:
    """Seconds from the run's start to its end (or to now while it runs)."""
    if run.started_at is None:
        return None
    end = run.completed_at or datetime.now(UTC)
    start = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())


MAX_SHOWN = 32 * 1024  # characters of one value a view prints; `--json` prints it whole


def json_block(value: Any, *, run_id: str | None = None) -> RenderableType:
    """A JSON value, pretty and highlighted; a large one cut, saying how to get it whole."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if len(text) <= MAX_SHOWN:
        return Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True)
    size = len(text.encode())
    where = f"`conveyor runs show {run_id} --json`" if run_id else "`--json`"
    note = Text(
        f"… the first {MAX_SHOWN // 1024} KB of {size / 1024**2:.1f} MB; {where} prints it whole",
        style="dim",
    )
    return Group(
        Syntax(
            text[:MAX_SHOWN], "json", theme="ansi_dark", background_color="default", word_wrap=True
        ),
        note,
    )


# -- commands' views ------------------------------------------------------------------------


def render_run_list(runs: Sequence[Run], next_cursor: str | None, *, roots: bool = False) -> None:
    """`conveyor runs list`: one row per run, newest first as the server sends them (`roots`:
    the root runs only, which says so where that may hide what was looked for)."""
    out = console()
    if not runs:
        out.print(
            "No runs found."
            + (" Runs triggered by other runs are left out: add --children." if roots else ""),
            style="dim",
        )
        return
    # Ids are what people copy, and statuses what they scan: those never shrink, nor do task
    # names up to 40 characters; the tags column (only there when a run has tags) is cut first.
    with_tags = any(run.tags for run in runs)
    with_children = any(run.child_count for run in runs)
    headers = (
        ["ID", "TASK", "STATUS", "CREATED", "TOOK", "TRIES"]
        + (["CHILDREN"] if with_children else [])
        + (["TAGS"] if with_tags else [])
    )
    rows: list[list[str | Text]] = []
    for run in runs:
        row: list[str | Text] = [
            run.id,
            run.task_id,
            status_text(run.status),
            relative_time(run.created_at),
            duration_text(run_duration(run)),
            str(run.attempts),
        ]
        if with_children:
            row.append(str(run.child_count or ""))
        if with_tags:
            row.append(", ".join(run.tags))
        rows.append(row)
    if not out.is_terminal:  # piped: every column, nothing cut, one line per run
        plain_rows(headers, rows)
    else:
        # every column but the tags as wide as its widest cell (task names up to 40);
        # the tags get the rest
        widths = [
            max(len(header), *(len(_plain(row[i])) for row in rows))
            for i, header in enumerate(headers)
        ]
        widths[1] = min(widths[1], 40)
        table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
        for i, header in enumerate(headers):
            if header == "TAGS":
                rest = out.width - sum(widths[:i]) - len(widths[:i])
                table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=max(4, rest))
            else:
                table.add_column(
                    header,
                    no_wrap=True,
                    overflow="ellipsis",
                    min_width=widths[i],
                    justify="right" if header in ("TOOK", "TRIES", "CHILDREN") else "left",
                )
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if next_cursor:
        out.print(f"\nMore runs: conveyor runs list --cursor {next_cursor}", style="dim")


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def plain_rows(headers: Sequence[str], rows: Sequence[Sequence[str | Text]]) -> None:
    """A table as plain lines for a pipe: columns padded to their widest cell, nothing cut or
    dropped whatever the width, no colour."""
    cells = [list(headers)] + [[_plain(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def render_run(run: Run, logs: Sequence[LogLine] | None = None) -> None:
    """`conveyor runs show`: the run's facts, payload, output or error, attempts and logs."""
    out = console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("Run", run.id)
    facts.add_row("Task", run.task_id)
    facts.add_row("Status", status_text(run.status))
    facts.add_row("Attempts", f"{run.attempts} of {run.max_attempts}")
    if run.queue:
        queue = run.queue + (f" (key {run.concurrency_key})" if run.concurrency_key else "")
        facts.add_row("Queue", queue)
    facts.add_row("Created", timestamp(run.created_at))
    if run.delayed_until and run.started_at is None:
        facts.add_row("Delayed until", timestamp(run.delayed_until))
    facts.add_row("Started", timestamp(run.started_at))
    facts.add_row("Completed", timestamp(run.completed_at))
    if run.started_at is not None:
        facts.add_row("Duration", duration_text(run_duration(run)))
    if run.next_attempt_at and not run.is_final:
        facts.add_row("Next attempt", timestamp(run.next_attempt_at))
    if run.tags:
        facts.add_row("Tags", ", ".join(run.tags))
    for label, value in (
        ("Parent", run.parent_id),
        ("Batch", run.batch_id),
        ("Replay of", run.replayed_from),
        ("Idempotency key", run.idempotency_key),
    ):
        if value:
            facts.add_row(label, value)
    if run.is_cached:
        facts.add_row("Cached", "an existing run was returned for this idempotency key")
    for wait in run.waiting_on or []:
        if wait.kind == "duration":
            what = f"a wait until {timestamp(wait.complete_at)}"
        elif wait.kind == "token":
            what = f"token {wait.id} (complete it to resume the run)"
        else:
            what = (
                f"{'child run' if wait.kind == 'run' else 'batch'}: {wait.done} of {wait.total} "
                "ended"
            )
        facts.add_row("Waiting on", what)
    out.print(facts)

    out.print(
        Panel(
            json_block(run.payload, run_id=run.id),
            title="Payload",
            title_align="left",
            expand=False,
            border_style="dim",
        )
    )
    if run.metadata:
        out.print(
            Panel(
                json_block(run.metadata, run_id=run.id),
                title="Metadata",
                title_align="left",
                expand=False,
                border_style="dim",
            )
        )
    if run.error is not None:
        out.print(
            Panel(
                _error_view(run.error),
                title="Error",
                title_align="left",
                expand=False,
                border_style="red",
            )
        )
    elif run.status == "COMPLETED" or run.output is not None:
        out.print(
            Panel(
                json_block(run.output, run_id=run.id),
                title="Output",
                title_align="left",
                expand=False,
                border_style="green",
            )
        )
    if run.attempt_list:
        out.print(_attempts_table(run))
    if logs is not None:
        out.print(Text("Logs", style="bold"))
        render_logs(logs, out)


def _error_view(error: Any) -> RenderableType:
    head = Text()
    head.append(f"{error.name}", style="bold red")
    if error.code:
        head.append(f" [{error.code}]", style="red")
    head.append(f": {error.message}" if error.message else "")
    if error.stack:
        return Group(head, Text(""), Text(error.stack.rstrip(), style="dim"))
    return head


def _attempts_table(run: Run) -> Table:
    table = Table(
        title="Attempts", title_justify="left", title_style="bold", box=None, header_style="bold"
    )
    table.add_column("#", justify="right")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("STARTED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    table.add_column("ERROR", overflow="fold")
    for attempt in run.attempt_list or []:
        took = (attempt.completed_at - attempt.started_at).total_seconds()
        error = f"{attempt.error.name}: {attempt.error.message}" if attempt.error else ""
        table.add_row(
            str(attempt.number),
            status_text(attempt.status),
            relative_time(attempt.started_at),
            duration_text(took),
            error,
        )
    return table


def render_logs(logs: Iterable[LogLine], out: Console | None = None) -> None:
    """Log lines: time, attempt, level, message and attributes."""
    out = out or console()
    lines = list(logs)
    if not lines:
        out.print("  (no logs)", style="dim")
        return
    # One line per log line, wrapped by the terminal rather than folded into a column, so a long
    # value (a token's URL) is copied whole; attributes as JSON, non-ASCII as written.
    for line in lines:
        ts = line.ts if line.ts.tzinfo else line.ts.replace(tzinfo=UTC)
        level = line.level.lower()
        text = Text(f"{ts.astimezone(UTC):%H:%M:%S.%f}"[:-3] + f" #{line.attempt} ", style="dim")
        text.append(f"{level.upper():<5}", style=LEVEL_STYLES.get(level, ""))
        text.append(" " + line.message)
        if line.attributes:
            text.append(
                "  "
                + " ".join(
                    f"{k}={json.dumps(v, default=str, ensure_ascii=False)}"
                    for k, v in line.attributes.items()
                ),
                style="dim",
            )
        out.print(text, soft_wrap=True)


def render_final(run: Run) -> None:
    """What `conveyor trigger --wait` prints when the run ends: its status and output or error."""
    out = console()
    line = Text()
    line.append("Run ")
    line.append(run.id, style="bold")
    line.append(" ended ")
    line.append_text(status_text(run.status))
    took = run_duration(run)
    if took is not None:
        line.append(f" after {duration_text(took)}")
    if run.attempts > 1:
        line.append(f" ({run.attempts} attempts)")
    out.print(line)
    if run.error is not None:
        out.print(_error_view(run.error))
    else:
        out.print(json_block(run.output, run_id=run.id))
