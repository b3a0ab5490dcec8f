"""`conveyor trigger TASK --payload JSON [--wait]`: start a run from the command line.

The payload is checked as JSON here, before any request, so a shell-mangled payload is one
clear line and nothing is triggered. Trigger options use the names of the Python options
(docs/triggering.md): the common ones have their own flags, any other goes through `--option k=v`.
The request itself is the Client's; this module only reads arguments and shows results.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from conveyor.cli.options import BadArgument, connection_options, json_option, open_client
from conveyor.cli.output import console, print_json, render_final, run_json
from conveyor.errors import ConveyorError

# The server answers every poll with the whole run; half a second keeps `--wait` snappy
# without hammering a dev server.
POLL_INTERVAL = 0.5
HINT_AFTER = 10.0  # seconds a run may sit QUEUED under `--wait` before a hint says why that may be


def parse_payload(text: str, option: str = "--payload") -> Any:
    """JSON from an option such as `--payload`: inline, `@file.json`, or `@-` for stdin."""
    source = option
    if text.startswith("@"):
        name = text[1:]
        if name == "-":
            text, source = sys.stdin.read(), f"{option} (stdin)"
        else:
            path = Path(name).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise BadArgument(f"{option} file not found: {path}") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise BadArgument(f"{option} file {path} cannot be read: {exc}") from None
            source = f"{option} file {path}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if not text.startswith("@") and ("{" in text or "[" in text) and '"' not in text:
            hint = f' (quote it for the shell: {option} \'{{"key": "value"}}\')'
        raise BadArgument(f"{source} is not valid JSON: {exc}{hint}") from None


def parse_option(raw: str) -> tuple[str, Any]:
    """`key=value` from `--option`: the value is JSON when it parses, else the text itself."""
    key, sep, value = raw.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise BadArgument(f"--option expects key=value, got {raw!r} (e.g. --option ttl=1h)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_options(raw_options: tuple[str, ...], flags: dict[str, Any]) -> dict[str, Any]:
    """Trigger options from `--option` pairs and the dedicated flags;
    a key given both ways is an error."""
    options: dict[str, Any] = {}
    for raw in raw_options:
        key, value = parse_option(raw)
        if key in options:
            raise BadArgument(f"--option {key}=... is given twice")
        options[key] = value
    for key, value in flags.items():
        if value is None or value == ():
            continue
        if key in options:
            raise BadArgument(
                f"--{key.replace('_', '-')} and --option {key}=... are both given; keep one"
            )
        options[key] = list(value) if isinstance(value, tuple) else value
    delay = options.get("delay")
    if isinstance(delay, str) and _is_number(delay):
        options["delay"] = float(delay)
    return options


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@click.command()
@click.argument("task_id", metavar="TASK")
@click.option(
    "--payload",
    "-p",
    default="{}",
    show_default=True,
    metavar="JSON",
    help="The payload as JSON, or @file.json, or @- to read it from stdin.",
)
@click.option("--wait", "-w", is_flag=True, help="Wait for the run to end and print its output.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="With --wait: give up waiting after this many seconds (the run goes on).",
)
@click.option(
    "--option",
    "-o",
    "raw_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any trigger option, e.g. ttl=1h, machine=small-2x, metadata='{\"a\": 1}'. Repeatable.",
)
@click.option(
    "--tag",
    "-t",
    "tags",
    multiple=True,
    metavar="TAG",
    help="A tag for the run. Repeatable (up to 10).",
)
@click.option(
    "--delay", metavar="DURATION", help="Start later: seconds, '90s', '1h30m', or an ISO datetime."
)
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Return the existing run for this key instead of a new one.",
)
@click.option("--queue", metavar="NAME", help="Run in this queue instead of the task's own.")
@click.option(
    "--concurrency-key", metavar="KEY", help="Give this key its own copy of the queue's limit."
)
@click.option(
    "--priority",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Head start in the queue, in seconds.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 250),
    metavar="N",
    help="Override the task's retry limit.",
)
@json_option
@connection_options
@click.pass_context
def trigger(
    ctx: click.Context,
    task_id: str,
    payload: str,
    wait: bool,
    timeout: float | None,
    raw_options: tuple[str, ...],
    tags: tuple[str, ...],
    delay: str | None,
    idempotency_key: str | None,
    queue: str | None,
    concurrency_key: str | None,
    priority: float | None,
    max_attempts: int | None,
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
) -> None:
    """Trigger a run of TASK.

    \b
    Examples:
      conveyor trigger hello-world --payload '{"name": "Ada"}'
      conveyor trigger process-video --payload @video.json --tag demo --wait
      conveyor trigger send-email -p '{}' --delay 1h --idempotency-key welcome-42

    With --wait the exit status is 0 only if the run COMPLETED.
    """
    if timeout is not None and not wait:
        raise BadArgument("--timeout only makes sense with --wait")
    body = parse_payload(payload)
    options = build_options(
        raw_options,
        {
            "tags": tags,
            "delay": delay,
            "idempotency_key": idempotency_key,
            "queue": queue,
            "concurrency_key": concurrency_key,
            "priority": priority,
            "max_attempts": max_attempts,
        },
    )
    with open_client(api_url, secret_key) as client:
        handle = client.trigger(task_id, body, **options)
        if not wait:
            if as_json:
                print_json(
                    {
                        "id": handle.id,
                        "task_id": handle.task_id or task_id,
                        "is_cached": handle.is_cached,
                    }
                )
            else:
                _print_triggered(handle.id, task_id, handle.is_cached)
            return
        if not as_json:
            _print_triggered(handle.id, task_id, handle.is_cached, follow=False)
        run = _wait_for(client, handle.id, timeout)
    if as_json:
        print_json(run_json(run))
    else:
        render_final(run)
    if run.status != "COMPLETED":
        ctx.exit(1)


def _print_triggered(run_id: str, task_id: str, is_cached: bool, *, follow: bool = True) -> None:
    out = console()
    if is_cached:
        out.print(f"Run [bold]{run_id}[/] of {task_id} already exists for this idempotency key.")
    else:
        out.print(f"Triggered [bold]{run_id}[/] ({task_id})")
    if follow:
        out.print(f"Follow it: conveyor runs show {run_id} --logs", style="dim")


def _wait_for(client: Any, run_id: str, timeout: float | None) -> Any:
    """Poll the run until it ends, showing its status on stderr while it waits: a spinner line
    on a terminal, a line per change otherwise. A run nothing picks up for HINT_AFTER seconds
    gets one hint saying why that may be."""
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = Console(stderr=True, highlight=False, soft_wrap=True)
    waiting = _Waiting(client, run_id, progress)
    with (
        progress.status(f"Waiting for {run_id}...")
        if progress.is_terminal
        else contextlib.nullcontext() as spinner
    ):
        while True:
            run = client.runs.retrieve(run_id)
            if run.is_final:
                return run
            line = waiting.see(run)
            if spinner is not None:
                spinner.update(line)
            if deadline is not None and time.monotonic() >= deadline:
                raise click.ClickException(
                    f"run {run_id} is still {_status(run)} after {timeout:g}s; it goes on, follow "
                    f"it with `conveyor runs show {run_id}`"
                )
            pause = (
                POLL_INTERVAL
                if deadline is None
                else max(0.0, min(POLL_INTERVAL, deadline - time.monotonic()))
            )
            time.sleep(pause)


class _Waiting:
    """What `--wait` shows of a run that has not ended yet."""

    def __init__(self, client: Any, run_id: str, out: Console) -> None:
        self.client = client
        self.run_id = run_id
        self.out = out
        self.shown = ""
        self.queued_since: float | None = None
        self.hinted = False

    def see(self, run: Any) -> str:
        status = _status(run)
        attempt = f", attempt {run.attempts}" if run.attempts > 1 else ""
        line = f"Waiting for {self.run_id}: {status}{attempt}"
        if line != self.shown:
            self.shown = line
            if not self.out.is_terminal:  # piped or logged: one line per change
                self.out.print(line)
        if status != "QUEUED":
            self.queued_since = None
            return line
        now = time.monotonic()
        if self.queued_since is None:
            self.queued_since = now
        if not self.hinted and now - self.queued_since >= HINT_AFTER:
            self.hinted = True
            self.out.print(self.hint(run, now - self.queued_since))
        return line

    def hint(self, run: Any, seconds: float) -> str:
        """Why a run may sit in its queue: the queue paused, full or at its rate limit, or no worker
        that runs it."""
        start = f"{self.run_id} is still QUEUED after {seconds:.0f} s: "
        queue = None
        if run.queue:
            with contextlib.suppress(ConveyorError):
                queue = self.client.queues.retrieve(run.queue)
        if queue is not None and queue.paused:
            return start + (
                f"its queue {queue.name!r} is paused; resume it on the dashboard's Queues page "
                f"or with `client.queues.resume({queue.name!r})`."
            )
        if (
            queue is not None
            and queue.concurrency_limit is not None
            and queue.running >= queue.concurrency_limit
        ):
            return start + (
                f"its queue {queue.name!r} is full ({queue.running} running, limit "
                f"{queue.concurrency_limit}); it starts when one of them ends."
            )
        rate = queue.rate_limit if queue is not None else None
        if queue is not None and rate is not None and queue.rate_used >= rate.limit:
            return start + (
                f"its queue {queue.name!r} is at its rate limit ({queue.rate_used} starts in "
                f"the last {rate.seconds:g} s, limit {rate.limit}); it starts when the window "
                "has room."
            )
        return start + (
            "no worker has picked it up. Is `conveyor dev` (or `conveyor worker`) running for "
            f"this environment, with code that defines {run.task_id!r}? A worker names the task "
            "modules that failed to import when it starts."
        )


def _status(run: Any) -> str:
    return str(getattr(run.status, "value", run.status))
