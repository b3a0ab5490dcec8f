"""`conveyor server`: run the platform for a team over SQLite or PostgreSQL.

Reads options only and hands over to `conveyor.platform.server.run_server`, which migrates
the database, makes the first admin, and serves the API with the engine's tick loop.
"""

from __future__ import annotations

import click

# the same as conveyor.platform.server's; not imported: it is heavy
DATABASE_URL_ENV = "CONVEYOR_DATABASE_URL"


@click.command(short_help="Run the platform for a team (SQLite or PostgreSQL).")
@click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    required=True,
    metavar="URL",
    help=f"A SQLite file (a path, sqlite:///relative.db or sqlite:////absolute.db) or "
    f"postgresql://user:password@host/db. [env: {DATABASE_URL_ENV}]",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 to reach it from other machines).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=3030,
    show_default=True,
    help="Port of the API.",
)
@click.option(
    "--worker-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds without a heartbeat after which a worker's runs are taken back.",
)
@click.option(
    "--new-admin-token",
    is_flag=True,
    help="Print a new token for the admin and revoke the earlier one (when it is lost).",
)
def server(
    database_url: str, host: str, port: int, worker_timeout: float, new_admin_token: bool
) -> None:
    """Serve the HTTP API over the database at --database-url, migrating it first.

    On an empty database an admin user is made and its personal access token (cv_pat_...)
    is printed once; log in with it (`conveyor login`), create projects, and give workers and
    backends the keys of their environments (`conveyor keys show`). Several servers may run over
    one database. Stop it with Ctrl-C.
    """
    from conveyor.platform.server import run_server

    run_server(
        database_url,
        host=host,
        port=port,
        worker_timeout=worker_timeout,
        new_admin_token=new_admin_token,
    )
