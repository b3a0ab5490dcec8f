"""`conveyor worker`: run this project's tasks for a Conveyor server, from any machine."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.options import (
    connection_options,
    project_dir_option,
    resolve_connection,
    worker_options,
)
from conveyor.config import load_config


@click.command(short_help="Run this project's tasks for a server (any machine).")
@connection_options
@project_dir_option
@click.option("--name", default=None, help="A name to recognise this worker by (default: the host name).")
@click.option("--worker-id", default=None, help="A stable id: a worker restarting with the same id gives back "
                                                "the runs it held at once, without waiting for its heartbeat to lapse.")
@worker_options
def worker(api_url: str | None, secret_key: str | None, project_dir: Path | None, name: str | None,
           worker_id: str | None, executors: int | None, capacity: int, quiet: bool) -> None:
    """Lease runs from the server at --api-url (or CONVEYOR_API_URL) with the environment key
    --secret-key (or CONVEYOR_SECRET_KEY) and run them with the task code of this project.
    Start as many as you like, on as many machines: they share the work, within every queue's
    limits. Stop it with Ctrl-C; runs it holds are retried elsewhere."""
    config = load_config(project_dir or Path.cwd())
    connection = resolve_connection(api_url, secret_key)
    from conveyor.platform.worker import run_worker

    run_worker(config, api_url=connection.api_url, secret_key=connection.secret_key, name=name,
               worker_id=worker_id, executors=executors, capacity=capacity, quiet=quiet)
