"""`conveyor dev`: the whole platform in one process on embedded SQLite.

    HTTP API (uvicorn) ─▶ engine ─▶ SQLite under .conveyor/
    supervisor ─ LocalLink ─┘   + executors running the project's task code
    ticker (delays, ttl, lost workers)  ·  file watcher (reload the code, keep the runs)

State lives in `<project>/.conveyor/`: dev.db, and dev.json with the secret key and worker id,
which stay the same across restarts so backends keep working and runs interrupted by a kill
are taken back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from rich.console import Console

from conveyor.config import Config
from conveyor.engine.engine import Engine
from conveyor.errors import ConfigError, ConveyorError
from conveyor.eventloop import use_fast_event_loop
from conveyor.platform.console import RunReporter
from conveyor.server.app import create_app
from conveyor.store import open_store
from conveyor.worker.link import LocalLink
from conveyor.worker.supervisor import Supervisor

TICK_INTERVAL = 0.1


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
        tmp.write_text(json.dumps({"api_url": api_url, "secret_key": self.secret_key, "worker_id": self.worker_id,
                                   "pid": os.getpid()}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)


def _lock(folder: Path) -> TextIO:
    handle = open(folder / "dev.lock", "w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise ConfigError(f"`conveyor dev` is already running for this project ({folder.parent}); "
                          "stop it first or use another folder") from exc
    return handle


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; pass --port to use another") from exc
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the platform stops its parts in order itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_dev(config: Config, *, host: str, port: int, executors: int | None, capacity: int,
                    console: Console, quiet: bool = False, worker: bool = True, worker_timeout: float = 30.0) -> None:
    config.check_dirs()
    state = DevState.load(config.root)
    lock = _lock(state.folder)
    _check_port(host, port)
    store = open_store(str(state.folder / "dev.db"))
    store.migrate()
    engine = Engine(store, worker_timeout=worker_timeout)
    env = engine.ensure_environment(config.project, "dev", "dev")
    engine.set_environment_limit(env.id, config.concurrency_limit)  # what the config says now, even nothing
    engine.add_api_key(env.id, state.secret_key)
    api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    # token callback URLs must reach this server from wherever they are used
    engine.public_url = os.environ.get("CONVEYOR_PUBLIC_URL") or api_url
    engine.token_secret()  # made once, before anything needs to sign a token URL
    state.write(api_url)

    supervisor = Supervisor(LocalLink(engine, env.id), root=config.root, worker_id=state.worker_id, name="dev",
                            environment="dev", default_machine=config.machine, executors=executors,
                            capacity=capacity, heartbeat_interval=min(2.0, worker_timeout / 3),
                            reporter=RunReporter(console, quiet, reloads=True))
    loop = asyncio.get_running_loop()

    def on_engine_event(event: str, env_id: str, run_id: str | None) -> None:
        if env_id not in (env.id, "*") or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            if event == "available":
                loop.call_soon_threadsafe(supervisor.wake)
            elif event == "stop" and run_id:
                loop.call_soon_threadsafe(supervisor.stop_run, run_id, "canceled")

    engine.subscribe(on_engine_event)
    app = create_app(engine)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5,
                                           access_log=False, lifespan="off"))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    console.print(f"[bold]Conveyor dev[/]  project [cyan]{config.project}[/]", highlight=False)
    console.print(f"  API         [bold]{api_url}[/]   (OpenAPI: {api_url}/docs)", highlight=False)
    console.print(f"  Secret key  [bold]{state.secret_key}[/]", highlight=False)
    console.print(f"  Tasks from  {', '.join(config.dirs)}   ·   state in {state.folder}", highlight=False)
    console.print("  Press Ctrl-C to stop.\n")

    async def tick() -> None:
        while True:
            try:
                await asyncio.to_thread(engine.tick)
            except ConveyorError as exc:
                console.print(f"[yellow]tick failed:[/] {exc}")
            await asyncio.sleep(TICK_INTERVAL)

    async def watch() -> None:
        from watchfiles import Change, awatch

        paths = [str(p) for p in config.task_dirs() if p.exists()]
        if config.source:
            paths.append(str(config.source))

        def relevant(change: Change, path: str) -> bool:
            return path.endswith((".py", ".toml")) and "__pycache__" not in path

        async for _ in awatch(*paths, watch_filter=relevant, debounce=300, stop_event=stop):
            await supervisor.load()

    parts = [server.serve(), tick()] + ([supervisor.run(), watch()] if worker else [])
    if not worker:
        console.print("  No worker here (--no-worker): start `conveyor worker` to run tasks.\n")
    background = [asyncio.create_task(c) for c in parts]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*background, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopper and task.exception() is not None:
            exc = task.exception()
            console.print(f"[red]error:[/] {exc}")
    console.print("\nStopping…")
    if worker:
        await supervisor.stop()
    app.state.wakeups.close()  # workers' long polls answer now, so the server can stop cleanly
    server.should_exit = True
    serving = background[0]
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(serving), 10)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    store.close()
    lock.close()


def run_dev(config: Config, *, host: str = "127.0.0.1", port: int = 3030, executors: int | None = None,
            capacity: int = 500, quiet: bool = False, worker: bool = True, worker_timeout: float = 30.0) -> None:
    """Run the dev platform until Ctrl-C (blocking)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a log someone tails or pipes, line by line
    console = Console(highlight=False, soft_wrap=True)
    use_fast_event_loop()
    asyncio.run(serve_dev(config, host=host, port=port, executors=executors,
                          capacity=capacity, console=console, quiet=quiet, worker=worker,
                          worker_timeout=worker_timeout))

