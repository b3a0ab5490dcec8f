"""`conveyor worker`: a worker on any machine, running the project's tasks for a server.

    supervisor ─ HttpLink (long-poll leases, heartbeats, outcomes) ─▶ conveyor server / dev
        └─ executors running the task code of the project folder it was started in, or, with
           --env, of the deployed version each run is locked to (fetched, cached per version)

It registers with the environment of its key, takes runs within every concurrency limit,
and gives back what it holds when it stops; if it dies instead, the server takes its runs back
once its heartbeat is missed.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sys
from pathlib import Path

from rich.console import Console

from conveyor import telemetry
from conveyor.config import Config
from conveyor.errors import ConfigError, StoreUnavailable
from conveyor.eventloop import use_fast_event_loop
from conveyor.platform.console import RunReporter
from conveyor.worker.link import HttpLink
from conveyor.worker.supervisor import Supervisor
from conveyor.worker.versions import VersionCache


async def serve_worker(
    config: Config | None,
    *,
    api_url: str | None,
    secret_key: str | None,
    name: str,
    worker_id: str,
    executors: int | None,
    capacity: int,
    console: Console,
    quiet: bool,
    deployed_env: str | None = None,
    cache_dir: Path | None = None,
) -> None:
    """With `config`, run that project's code; with `deployed_env` instead, the environment's
    deployed versions, cached under `cache_dir`."""
    if config is not None:
        config.check_dirs()
    telemetry.check(config)  # OpenTelemetry export asked for but impossible: say so now
    link = HttpLink(api_url, secret_key)
    # who we are, before any code
    await _register(link, worker_id, name, deployed=deployed_env is not None, console=console)
    environment = link.environment or "dev"
    versions = None
    if deployed_env is not None:
        if environment != deployed_env:
            await link.close()
            raise ConfigError(
                f"the key belongs to the {link.slug} environment, not {deployed_env}: pass the "
                f"{deployed_env} key (`conveyor keys show --env {deployed_env}`)"
            )
        assert cache_dir is not None and link.env_id is not None
        versions = VersionCache(cache_dir, link.env_id, link.bundle)
    supervisor = Supervisor(
        link,
        root=config.root if config else (cache_dir or Path.cwd()),
        worker_id=worker_id,
        name=name,
        environment=environment,
        default_machine=config.machine if config else "small-1x",
        executors=executors,
        capacity=capacity,
        heartbeat_interval=link.heartbeat_interval,
        reporter=RunReporter(console, quiet),
        versions=versions,
        partial_loads=False,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print(
        f"[bold]Conveyor worker[/] {name} ({worker_id})  →  {link.client.api_url}  "
        f"environment [cyan]{link.slug or environment}[/]",
        highlight=False,
    )
    if versions is not None:
        console.print(
            f"  Runs the deployed versions (current: {link.current_version or 'none yet'}); "
            f"cache {cache_dir}",
            highlight=False,
        )
    # a worker that cannot load its code would only sit there
    if not await supervisor.load() and versions is None:
        await supervisor.stop(grace=0)
        raise ConfigError(f"the task code failed to load: {supervisor.load_error}")
    runner = asyncio.create_task(supervisor.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([runner, stopper], return_when=asyncio.FIRST_COMPLETED)
    if runner in done and runner.exception() is not None:
        console.print(f"[red]error:[/] {runner.exception()}")
    console.print("\nStopping…")
    await supervisor.stop()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def _register(
    link: HttpLink, worker_id: str, name: str, *, deployed: bool, console: Console
) -> None:
    """Register, waiting while the server answers that its database is away (503): a worker
    started during a database outage or failover joins when it is over instead of exiting.
    Anything else (a wrong key, a server that does not answer) ends the worker at once."""
    told = False
    while True:
        try:
            await link.register(worker_id, name, None, deployed=deployed)
            return
        except StoreUnavailable as exc:
            if not told:
                console.print(
                    f"[yellow]waiting:[/] the server answers: {exc}; joining once it is back"
                )
                told = True
            await asyncio.sleep(exc.retry_after or 1)


def run_worker(
    config: Config | None,
    *,
    api_url: str | None = None,
    secret_key: str | None = None,
    name: str | None = None,
    worker_id: str | None = None,
    executors: int | None = None,
    capacity: int = 500,
    quiet: bool = False,
    deployed_env: str | None = None,
    cache_dir: Path | None = None,
) -> None:
    """Run a worker until Ctrl-C (blocking)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    console = Console(highlight=False, soft_wrap=True)
    use_fast_event_loop()
    asyncio.run(
        serve_worker(
            config,
            api_url=api_url,
            secret_key=secret_key,
            name=name or socket.gethostname(),
            worker_id=worker_id or "wrk_" + secrets.token_hex(8),
            executors=executors,
            capacity=capacity,
            console=console,
            quiet=quiet,
            deployed_env=deployed_env,
            cache_dir=cache_dir,
        )
    )
