"""`conveyor server`: the platform for a team, over SQLite or PostgreSQL, with no worker inside.

    HTTP API (uvicorn) ─▶ engine ─▶ database at --database-url (migrated at start)
    ticker (delays, ttl, lost workers)        ▲
    conveyor worker processes, any machine ───┘ leasing over HTTP with an environment's key

On a database without an admin it makes one and prints the admin's personal access token,
once: the token is stored only as its hash. Several servers may run over one database.
This module never prints or logs a secret other than that one token.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from conveyor.dashboard import DashboardSettings
from conveyor.engine import Engine
from conveyor.errors import ConfigError, ConveyorError
from conveyor.eventloop import use_fast_event_loop
from conveyor.platform.serving import PUBLIC_URL_ENV, ApiService, check_port
from conveyor.store import Store, open_store

DATABASE_URL_ENV = "CONVEYOR_DATABASE_URL"
_SCHEMES = ("sqlite", "postgresql", "postgres")


def check_database_url(url: str) -> str:
    """The URL as given when it names a database Conveyor can use; ConfigError otherwise."""
    url = url.strip()
    if not url:
        raise ConfigError(
            f"--database-url is empty: pass sqlite:////path/to/conveyor.db or postgresql://... "
            f"(or set {DATABASE_URL_ENV})"
        )
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"unsupported database URL scheme {scheme!r}: use sqlite:////path/to/conveyor.db "
                "or postgresql://user:password@host/database"
            )
        if scheme == "sqlite" and not url.split("://", 1)[1].strip("/"):
            raise ConfigError(
                "a sqlite:// URL needs a file path, e.g. sqlite:////var/lib/conveyor/conveyor.db"
            )
    return url


def describe_database(url: str) -> str:
    """What to print for the database: a SQLite file's absolute path (`sqlite:///conveyor.db` is
    relative to the working folder, `sqlite:////var/lib/conveyor.db` absolute, as in SQLAlchemy),
    or the URL with its password hidden."""
    if url.lower().startswith(("postgresql://", "postgres://")):
        return redact(url)
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return f"SQLite {os.path.abspath(path)}"


def redact(url: str) -> str:
    """The URL with its password hidden, fit to print."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def open_database(url: str) -> tuple[Store, list[int]]:
    """The store at `url`, migrated; and the migrations applied now."""
    try:
        store = open_store(url)
        return store, store.migrate()
    except ConveyorError:
        raise
    except Exception as exc:  # the driver's own errors: unreachable host, bad path, wrong password
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot open the database {describe_database(url)}: {detail}") from exc


async def serve_platform(
    database_url: str,
    *,
    host: str,
    port: int,
    console: Console,
    worker_timeout: float = 30.0,
    new_admin_token: bool = False,
) -> None:
    url = check_database_url(database_url)
    check_port(host, port)
    store, applied = open_database(url)
    try:
        engine = Engine(store, worker_timeout=worker_timeout)
        admin_token = engine.accounts.bootstrap_admin()
        if admin_token is None and new_admin_token:
            admin_token = engine.accounts.new_admin_token()
        public_url = os.environ.get(PUBLIC_URL_ENV, "")
        service = ApiService(
            engine,
            host=host,
            port=port,
            console=console,
            dashboard=DashboardSettings(secure_cookies=public_url.startswith("https://")),
        )

        console.print("[bold]Conveyor server[/]", highlight=False)
        console.print(
            f"  Dashboard  [bold]{service.api_url}/[/]   (log in with a personal access token)",
            highlight=False,
        )
        console.print(
            f"  API        [bold]{service.api_url}[/]   (OpenAPI: {service.api_url}/docs)",
            highlight=False,
        )
        migrated = (
            f"   (migrations applied now: {', '.join(f'{v:04d}' for v in applied)})"
            if applied
            else ""
        )
        console.print(f"  Database   {describe_database(url)}{migrated}", highlight=False)
        if admin_token is not None:
            console.print(f"  Admin token  [bold]{admin_token}[/]", highlight=False)
            console.print(
                "  [yellow]Shown only this once: store it now[/] (`conveyor login --token ...`). "
                "It is kept only as a hash.",
                highlight=False,
            )
        else:
            console.print(
                "  An admin exists; its token was shown at the first start "
                "(`--new-admin-token` makes a new one and revokes the old).",
                highlight=False,
            )
        console.print(
            "  Workers connect with `conveyor worker --api-url URL` and an environment key "
            "(`conveyor keys show`). Press Ctrl-C to stop.\n",
            highlight=False,
        )
        await service.run()
    finally:
        store.close()


def run_server(
    database_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 3030,
    worker_timeout: float = 30.0,
    new_admin_token: bool = False,
) -> None:
    """Run the server until Ctrl-C or SIGTERM (blocking)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    console = Console(highlight=False, soft_wrap=True)
    use_fast_event_loop()
    asyncio.run(
        serve_platform(
            database_url,
            host=host,
            port=port,
            console=console,
            worker_timeout=worker_timeout,
            new_admin_token=new_admin_token,
        )
    )
