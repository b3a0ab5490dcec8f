"""`conveyor dev`: run the whole platform for the project in this folder.

Loads the project's config (so a bad config is one clear error before anything starts) and
hands over to `conveyor.platform.dev.run_dev`, which owns the embedded SQLite under
`.conveyor/`, the API, the reloading worker, and what is printed while it runs.
This module only reads options; it must not start anything itself.
"""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.options import project_dir_option, worker_options
from conveyor.config import load_config


@click.command(short_help="Run the platform locally (API and worker).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=3030,
    show_default=True,
    help="Port of the API.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 to reach it from other machines).",
)
@project_dir_option
@worker_options
@click.option(
    "--no-worker",
    is_flag=True,
    help="Serve the API only; run the tasks with `conveyor worker` processes instead.",
)
@click.option(
    "--worker-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds without a heartbeat after which a worker's runs are taken back.",
)
def dev(
    port: int,
    host: str,
    project_dir: Path | None,
    executors: int | None,
    capacity: int,
    quiet: bool,
    no_worker: bool,
    worker_timeout: float,
) -> None:
    """Run the platform locally: API on http://127.0.0.1:3030, an embedded SQLite
    database under .conveyor/, and a worker that reloads when your task files change.

    Prints the API URL and the dev secret key (cv_dev_...), which stays the same across
    restarts of the same project. Stop it with Ctrl-C.
    """
    config = load_config(project_dir or Path.cwd())
    from conveyor.platform.dev import run_dev

    run_dev(
        config,
        host=host,
        port=port,
        executors=executors,
        capacity=capacity,
        quiet=quiet,
        worker=not no_worker,
        worker_timeout=worker_timeout,
    )
