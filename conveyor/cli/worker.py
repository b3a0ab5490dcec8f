"""`conveyor worker`: run tasks for a Conveyor server, from any machine: the code of this project
folder, or with --env the versions deployed to staging, prod or a preview branch."""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.options import (
    BadArgument,
    connection_options,
    project_dir_option,
    resolve_connection,
    worker_options,
)
from conveyor.config import load_config


@click.command(
    short_help="Run tasks for a server: this project's code, or the deployed versions (--env)."
)
@connection_options
@project_dir_option
@click.option(
    "--env",
    "env",
    type=click.Choice(["staging", "prod", "preview"]),
    default=None,
    help="Run the versions deployed to this environment (fetched from the server) instead of the "
    "code of a project folder. Its key comes from --secret-key, or from `conveyor login`.",
)
@click.option("--branch", metavar="NAME", default=None, help="With --env preview: the branch.")
@click.option(
    "--project",
    "-p",
    metavar="PROJECT",
    default=None,
    help="With --env and `conveyor login`: the project (default: the config's, if any).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="CONVEYOR_WORKER_CACHE",
    show_envvar=True,
    help=(
        "Where deployed versions and their environments are kept (default: "
        "~/.cache/conveyor/worker)."
    ),
)
@click.option(
    "--name", default=None, help="A name to recognise this worker by (default: the host name)."
)
@click.option(
    "--worker-id",
    default=None,
    help="A stable id: a worker restarting with the same id gives back "
    "the runs it held at once, without waiting for its heartbeat to lapse.",
)
@worker_options
def worker(
    api_url: str | None,
    secret_key: str | None,
    project_dir: Path | None,
    env: str | None,
    branch: str | None,
    project: str | None,
    cache_dir: Path | None,
    name: str | None,
    worker_id: str | None,
    executors: int | None,
    capacity: int,
    quiet: bool,
) -> None:
    """Lease runs from the server at --api-url (or CONVEYOR_API_URL) with the environment key
    --secret-key (or CONVEYOR_SECRET_KEY) and run them with the task code of this project, or,
    with --env, with the deployed version each run is locked to: new versions are picked up as
    they are promoted, and older ones keep serving the runs that started on them.
    Start as many as you like, on as many machines: they share the work, within every queue's
    limits. Stop it with Ctrl-C; runs it holds are retried elsewhere."""
    from conveyor.platform.worker import run_worker

    if env is None:
        if branch is not None or cache_dir is not None:
            raise BadArgument(
                "--branch and --cache-dir go with --env (a worker of deployed versions)"
            )
        config = load_config(project_dir or Path.cwd())
        connection = resolve_connection(api_url, secret_key)
        run_worker(
            config,
            api_url=connection.api_url,
            secret_key=connection.secret_key,
            name=name,
            worker_id=worker_id,
            executors=executors,
            capacity=capacity,
            quiet=quiet,
        )
        return
    from conveyor.cli.deploy import check_environment, config_project, environment_settings
    from conveyor.worker.versions import default_cache_dir

    check_environment(env, branch)
    url, key = environment_settings(env, branch, config_project(project), api_url, secret_key)
    run_worker(
        None,
        api_url=url,
        secret_key=key,
        name=name,
        worker_id=worker_id,
        executors=executors,
        capacity=capacity,
        quiet=quiet,
        deployed_env=env,
        cache_dir=(cache_dir or default_cache_dir()).resolve(),
    )
