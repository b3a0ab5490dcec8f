"""What every process serving the HTTP API shares (`conveyor dev`, `conveyor server`): the port
check, uvicorn without its own signal handlers, the engine's tick loop, and stopping the parts
in order on Ctrl-C or SIGTERM.

    ApiService(engine, host, port)  ─ run(*more parts) ─▶ uvicorn · tick loop · alert sender ·
                                                          more parts
                                                          until a signal or a part fails

Processes differ only in what they add (a reloading worker in dev) and what they print first.
Nothing here opens a database or decides which environment anything belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any

import uvicorn
from rich.console import Console

from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.engine import Engine
from conveyor.errors import ConfigError, ConveyorError
from conveyor.platform.alerts import AlertSender, SmtpSettings
from conveyor.server.app import create_app

TICK_INTERVAL = 0.1
TICK_REPORT_EVERY = 30.0  # seconds between reports while ticks keep failing

log = logging.getLogger("conveyor.server")
PUBLIC_URL_ENV = "CONVEYOR_PUBLIC_URL"


def check_port(host: str, port: int) -> None:
    """ConfigError, before anything starts, when the port is taken or the host is not ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use; pass --port to use another"
                ) from exc
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def local_api_url(host: str, port: int) -> str:
    """The URL to reach the API from this machine."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the platform stops its parts in order itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def until_due(due: float | None, started: float) -> float:
    """How long the tick loop sleeps: until the next due time the tick named (a fire time, a
    delayed run, a duration), so it happens on time, but never longer than TICK_INTERVAL. A time
    that came while the tick ran (`started`: when it began) is ticked at once; one that was
    already past when it began and is still due is left to the next regular tick (it waits on
    something else: a dev schedule with no worker alive)."""
    if due is None:
        return TICK_INTERVAL
    left = due - time.time()
    if left <= 0:
        return 0.0 if due > started else TICK_INTERVAL
    return min(TICK_INTERVAL, left + 0.0005)


class ApiService:
    """The HTTP API (and the dashboard, when given its settings) over `engine` plus the engine's
    tick loop (delays, ttl, lost workers), until SIGINT or SIGTERM. Several may run over one
    database: ticking is safe from many servers. Make it inside the event loop: it takes over the
    signals at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        host: str,
        port: int,
        console: Console,
        dashboard: DashboardSettings | None = None,
        cors_origins: Sequence[str] | None = None,
    ) -> None:
        self.engine = engine
        self.console = console
        self.api_url = local_api_url(host, port)
        # token callback URLs must reach this server from wherever they are used
        engine.waitpoints.public_url = os.environ.get(PUBLIC_URL_ENV) or self.api_url
        engine.waitpoints.token_secret()  # made once, before anything needs to sign a token URL
        engine.auth.secret()  # loaded once: checking a public token then needs no query
        self.app = create_app(engine, cors_origins=cors_origins)
        # alert deliveries due are sent by every server (each claims its own, alerts.py)
        self.alerts = AlertSender(engine, smtp=SmtpSettings.from_environment())
        if dashboard is not None:
            mount_dashboard(self.app, engine, dashboard)
        self.server = _Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=5,
                access_log=False,
                lifespan="off",
            )
        )
        self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)

    async def _tick(self) -> None:
        """Tick until stopped. A failing tick (the database away for a restart, say) never stops
        the server: it is reported once, again every TICK_REPORT_EVERY seconds while it lasts,
        and when ticking works again."""
        failing_since: float | None = None
        reported = 0.0
        while True:
            pause = TICK_INTERVAL
            started = time.time()
            try:
                due = await asyncio.to_thread(self.engine.tick)
            except Exception as exc:
                now = time.monotonic()
                if failing_since is None or now - reported >= TICK_REPORT_EVERY:
                    if not isinstance(exc, ConveyorError):  # a bug of ours: keep its traceback
                        log.exception("tick failed")
                    self.console.print(
                        f"[yellow]tick failed{' again' if failing_since else ''}:[/] {exc}"
                    )
                    reported = now
                failing_since = failing_since or now
            else:
                if failing_since is not None:
                    self.console.print(
                        f"tick works again after {time.monotonic() - failing_since:.0f}s"
                    )
                    failing_since = None
                pause = until_due(due, started)
            await asyncio.sleep(pause)

    async def run(
        self,
        *parts: Coroutine[Any, Any, Any],
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Serve until stopped or until a part fails, then stop: `before_shutdown` (a worker
        giving its runs back), long polls answered, uvicorn drained, the rest canceled."""
        background = [
            asyncio.create_task(c)
            for c in (self.server.serve(), self._tick(), self.alerts.run(), *parts)
        ]
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([*background, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                self.console.print(f"[red]error:[/] {task.exception()}")
        self.console.print("\nStopping…")
        self.stop.set()
        if before_shutdown is not None:
            await before_shutdown()
        # workers' long polls answer now, so the server can stop cleanly
        self.app.state.wakeups.close()
        self.app.state.run_feed.close()
        self.server.should_exit = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(background[0]), 10)
        for task in background:
            task.cancel()
        stopper.cancel()
        await asyncio.gather(*background, stopper, return_exceptions=True)
