"""`conveyor dev`: the whole platform in one process on embedded SQLite.

    HTTP API (uvicorn) ─▶ engine ─▶ SQLite under .conveyor/
    supervisor ─ LocalLink ─┘   + executors running the project's task code
    ticker (delays, ttl, lost workers)  ·  file watcher (reload the code, keep the runs)

The API and the ticker are `conveyor.platform.serving.ApiService`, shared with `conveyor server`;
this module adds the project's state folder, its dev key and the reloading worker.

State lives in `<project>/.conveyor/`: dev.db, and dev.json with the secret key and worker id,
which stay the same across restarts so backends keep working and runs interrupted by a kill
are taken back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from conveyor import telemetry
from conveyor.config import Config
from conveyor.dashboard import DashboardSettings
from conveyor.engine import Engine
from conveyor.errors import ConfigError
from conveyor.eventloop import use_fast_event_loop
from conveyor.platform.console import RunReporter
from conveyor.platform.link import LocalLink
from conveyor.platform.local_env import LocalEnv
from conveyor.platform.serving import ApiService, check_port
from conveyor.server.cors import DEV_ORIGINS, origins_from_env
from conveyor.store import open_store
from conveyor.worker.supervisor import Supervisor


@dataclass(frozen=True)
class DevState:
    """What stays the same across restarts of `conveyor dev` in one project."""

    folder: Path
    secret_key: str
    worker_id: str

    @classmethod
    def load(cls, root: Path) -> DevState:
        folder = root / ".conveyor"
        folder.mkdir(exist_ok=True)
        (folder / ".gitignore").write_text("*\n")
        path = folder / "dev.json"
        data: dict[str, Any] = {}
        if path.exists():
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text())
        secret = data.get("secret_key") or "cv_dev_" + secrets.token_hex(16)
        worker_id = data.get("worker_id") or "wrk_dev_" + secrets.token_hex(6)
        return cls(folder, secret, worker_id)

    def write(self, api_url: str) -> None:
        path = self.folder / "dev.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "api_url": api_url,
                    "secret_key": self.secret_key,
                    "worker_id": self.worker_id,
                    "pid": os.getpid(),
                },
                indent=2,
            )
        )
        os.chmod(tmp, 0o600)
        tmp.replace(path)


def _lock(folder: Path) -> TextIO:
    handle = open(folder / "dev.lock", "w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise ConfigError(
            f"`conveyor dev` is already running for this project ({folder.parent}); "
            "stop it first or use another folder"
        ) from exc
    return handle


async def serve_dev(
    config: Config,
    *,
    host: str,
    port: int,
    executors: int | None,
    capacity: int,
    console: Console,
    quiet: bool = False,
    worker: bool = True,
    worker_timeout: float = 30.0,
) -> None:
    config.check_dirs()
    telemetry.check(config)  # OpenTelemetry export asked for but impossible: say so now
    state = DevState.load(config.root)
    lock = _lock(state.folder)
    check_port(host, port)
    store = open_store(str(state.folder / "dev.db"))
    store.migrate()
    engine = Engine(store, worker_timeout=worker_timeout)
    env = engine.environments.ensure(config.project, "dev", "dev")
    engine.environments.set_limit(
        env.id, config.concurrency_limit
    )  # what the config says now, even nothing
    engine.environments.add_api_key(env.id, state.secret_key)
    service = ApiService(
        engine,
        host=host,
        port=port,
        console=console,
        dashboard=DashboardSettings(local_env_id=env.id, local_secret_key=state.secret_key),
        # a front end's own dev server on this machine may call the public token routes
        cors_origins=(*DEV_ORIGINS, *config.realtime.cors_origins, *origins_from_env()),
    )
    state.write(service.api_url)

    local_env = LocalEnv(
        config.root / ".env", lambda line: console.print(f"[yellow]{line}[/]", highlight=False)
    )
    supervisor = Supervisor(
        LocalLink(engine, env.id),
        root=config.root,
        worker_id=state.worker_id,
        name="dev",
        environment="dev",
        default_machine=config.machine,
        executors=executors,
        capacity=capacity,
        heartbeat_interval=min(2.0, worker_timeout / 3),
        reporter=RunReporter(console, quiet, reloads=True),
        local_env=local_env,
    )
    loop = asyncio.get_running_loop()

    def on_engine_event(event: str, env_id: str, run_id: str | None) -> None:
        if env_id not in (env.id, "*") or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            if event == "available":
                loop.call_soon_threadsafe(supervisor.wake)
            elif event == "stop" and run_id:
                loop.call_soon_threadsafe(supervisor.stop_run, run_id, "canceled")

    engine.events.subscribe(on_engine_event)

    console.print(f"[bold]Conveyor dev[/]  project [cyan]{config.project}[/]", highlight=False)
    console.print(f"  Dashboard   [bold]{service.api_url}/[/]", highlight=False)
    console.print(
        f"  API         [bold]{service.api_url}[/]   (OpenAPI: {service.api_url}/docs)",
        highlight=False,
    )
    console.print(f"  Secret key  [bold]{state.secret_key}[/]", highlight=False)
    console.print(
        f"  Tasks from  {', '.join(config.dirs)}   ·   state in {state.folder}", highlight=False
    )
    if local_env.path.exists():
        count = len(local_env())
        console.print(
            f"  Variables   {count} from {local_env.path.name}, given to the tasks", highlight=False
        )
    console.print("  Press Ctrl-C to stop.\n")

    async def watch() -> None:
        from watchfiles import Change, awatch

        paths = [str(p) for p in config.task_dirs() if p.exists()]
        if config.source:
            paths.append(str(config.source))

        def relevant(change: Change, path: str) -> bool:
            return path.endswith((".py", ".toml")) and "__pycache__" not in path

        async for _ in awatch(*paths, watch_filter=relevant, debounce=300, stop_event=service.stop):
            await supervisor.load()

    if not worker:
        console.print("  No worker here (--no-worker): start `conveyor worker` to run tasks.\n")
        await service.run()
    else:
        await service.run(supervisor.run(), watch(), before_shutdown=supervisor.stop)
    store.close()
    lock.close()


def run_dev(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 3030,
    executors: int | None = None,
    capacity: int = 500,
    quiet: bool = False,
    worker: bool = True,
    worker_timeout: float = 30.0,
) -> None:
    """Run the dev platform until Ctrl-C (blocking)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a log someone tails or pipes, line by line
    console = Console(highlight=False, soft_wrap=True)
    use_fast_event_loop()
    asyncio.run(
        serve_dev(
            config,
            host=host,
            port=port,
            executors=executors,
            capacity=capacity,
            console=console,
            quiet=quiet,
            worker=worker,
            worker_timeout=worker_timeout,
        )
    )
