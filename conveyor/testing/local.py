"""A real platform inside the test's process, for integration tests (the `conveyor_platform`
fixture of plugin.py).

    LocalPlatform(folder).start(project)   a thread running, on its own event loop:
        HTTP API (uvicorn, a free port) ─▶ engine ─▶ SQLite in `folder`
        supervisor ─ LocalLink ─┘  + executor processes running the project's task code
        the engine's tick (delays, ttl, waits that end)
    .client / .async_client()              bound to it with the environment's key
    .stop()                                the worker gives its runs back, the server stops

The same parts as `conveyor dev`, without its state folder in the project, its lock, its file
watcher or its console: tests may run while `conveyor dev` serves the same project.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config import Config, load_config
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.client import AsyncClient, Client

START_TIMEOUT = 60.0  # seconds for the server to listen and the task code to load
TICK_INTERVAL = 0.05


class LocalPlatform:
    """A platform on a SQLite database in `folder`, serving the tasks of one project."""

    def __init__(self, folder: Path | str, *, project: Path | str | None = None) -> None:
        self.folder = Path(folder)
        self.project = Path(project) if project is not None else None
        self.secret_key = "cv_test_" + secrets.token_hex(16)
        self.api_url = ""
        self.config: Config | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._client: Client | None = None

    def __repr__(self) -> str:
        state = self.api_url or "not started"
        return (
            f"<LocalPlatform {state} serving {self.config.root if self.config else self.project}>"
        )

    # -- starting and stopping ------------------------------------------------------------------

    def start(self, project: Path | str | None = None) -> LocalPlatform:
        """Serve the tasks of the project containing `project` (a folder with, or under, a
        pyproject.toml with [tool.conveyor] or a conveyor.toml); ConfigError when its code does
        not load. Once started, starting again with the same project does nothing."""
        wanted = Path(project) if project is not None else self.project
        if wanted is None:
            raise ConfigError(
                "conveyor_platform does not know which project to serve: mark the test with "
                "@pytest.mark.conveyor_project('path/to/project'), set conveyor_project in the "
                "pytest ini options, or call conveyor_platform.start('path/to/project')"
            )
        config = load_config(wanted)
        if self._thread is not None:
            if self.config is not None and config.root.resolve() != self.config.root.resolve():
                raise ConfigError(
                    f"this platform already serves {self.config.root}; one test gets one project"
                )
            return self
        config.check_dirs()
        self.config = config
        self.folder.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        self.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self._thread = threading.Thread(
            target=self._serve_in_thread, args=(config, listener), name="conveyor-platform"
        )
        self._thread.daemon = True
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self.stop()
            raise ConfigError(f"the platform did not start in {START_TIMEOUT:g}s")
        if self._error is not None:
            error = self._error
            self.stop()
            raise error
        return self

    def stop(self) -> None:
        """Stop the worker (its executors end) and the server; the database stays in `folder`."""
        if self._client is not None:
            self._client.close()
            self._client = None
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> LocalPlatform:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ----------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """A `Client` bound to this platform (started on first use with the default project)."""
        if self._thread is None:
            self.start()
        if self._client is None:
            from conveyor.client import Client

            self._client = Client(api_url=self.api_url, secret_key=self.secret_key)
        return self._client

    def async_client(self) -> AsyncClient:
        """A new `AsyncClient` bound to this platform; close it (`async with`) in the test."""
        if self._thread is None:
            self.start()
        from conveyor.client import AsyncClient

        return AsyncClient(api_url=self.api_url, secret_key=self.secret_key)

    # -- the platform's thread ---------------------------------------------------------------------

    def _serve_in_thread(self, config: Config, listener: socket.socket) -> None:
        try:
            asyncio.run(self._serve(config, listener))
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            listener.close()
            self._ready.set()

    async def _serve(self, config: Config, listener: socket.socket) -> None:
        import uvicorn

        from conveyor.engine import Engine
        from conveyor.platform.link import LocalLink
        from conveyor.server.app import create_app
        from conveyor.store import open_store
        from conveyor.worker.supervisor import Supervisor

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = open_store(str(self.folder / "conveyor.db"))
        store.migrate()
        engine = Engine(store)
        env = engine.environments.ensure(config.project, "dev", "dev")
        engine.environments.set_limit(env.id, config.concurrency_limit)
        engine.environments.add_api_key(env.id, self.secret_key)
        engine.waitpoints.public_url = self.api_url
        engine.waitpoints.token_secret()
        app = create_app(engine, rate_limit=False)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        supervisor = Supervisor(
            LocalLink(engine, env.id),
            root=config.root,
            worker_id="wrk_test_" + secrets.token_hex(6),
            name="test",
            environment="dev",
            default_machine=config.machine,
            executors=1,
            heartbeat_interval=2.0,
            partial_loads=False,
        )
        loop = self._loop

        def on_engine_event(event: str, env_id: str, run_id: str | None) -> None:
            if env_id not in (env.id, "*") or loop.is_closed():
                return
            with contextlib.suppress(RuntimeError):
                if event == "available":
                    loop.call_soon_threadsafe(supervisor.wake)
                elif event == "stop" and run_id:
                    loop.call_soon_threadsafe(supervisor.stop_run, run_id, "canceled")

        engine.events.subscribe(on_engine_event)

        async def tick() -> None:
            while True:
                with contextlib.suppress(Exception):  # a failed tick is tried again
                    await asyncio.to_thread(engine.tick)
                await asyncio.sleep(TICK_INTERVAL)

        stopped = False
        try:
            if not await supervisor.load():
                raise ConfigError(
                    f"the tasks of {config.root} do not load: {supervisor.load_error}"
                )
            parts = [
                asyncio.create_task(server.serve(sockets=[listener])),
                asyncio.create_task(supervisor.run()),
                asyncio.create_task(tick()),
            ]
            while not server.started:
                if parts[0].done():
                    parts[0].result()
                    raise ConfigError("the platform's HTTP server stopped at once")
                await asyncio.sleep(0.01)
            self._ready.set()
            stopper = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([*parts, stopper], return_when=asyncio.FIRST_COMPLETED)
            for part in done:
                if part is not stopper and not part.cancelled() and part.exception() is not None:
                    self._error = part.exception()
            stopped = True
            await supervisor.stop(grace=0.5)
            server.should_exit = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(parts[0]), 10)
            for part in [*parts, stopper]:
                part.cancel()
            await asyncio.gather(*parts, stopper, return_exceptions=True)
        finally:
            if not stopped:
                with contextlib.suppress(Exception):
                    await supervisor.stop(grace=0)
            store.close()
