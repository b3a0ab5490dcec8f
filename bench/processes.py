"""The processes the benchmark starts: each system runs in its own session (process group), its
memory is sampled with psutil, and it is always stopped, group and stragglers, by pid.

Conveyor's executors start their own sessions, so killing the platform's group alone would miss
them: every pid seen under a service is remembered and killed by id at the end too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A command started in a new session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, cwd: Path, log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, float] = {}  # pid -> create_time, to never kill a reused pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.remember()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        """The service's process and every descendant alive now."""
        if not self.alive():
            return []
        try:
            root = psutil.Process(self.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for proc in found:
            with contextlib.suppress(psutil.Error):
                self._seen.setdefault(proc.pid, proc.create_time())
        return found

    def remember(self) -> None:
        self.processes()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, wait up to `grace` seconds, then SIGKILL the group and every pid
        ever seen under the service that is still alive."""
        if self.proc is None:
            return
        self.remember()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, created in self._seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class MemorySampler:
    """Peak memory of a service's process tree, sampled in a thread while a workload runs.

    `peak_rss` is the largest sum of RSS over the tree (what was asked for; it counts pages
    shared between forked processes once per process). `peak_pss` is the largest sum of PSS
    (shared pages split between the processes sharing them), sampled less often as it is costly.
    """

    def __init__(self, service: Service, interval: float = 0.05, pss_every: int = 10) -> None:
        self.service = service
        self.interval = interval
        self.pss_every = pss_every
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"memory-{service.name}", daemon=True)

    def __enter__(self) -> MemorySampler:
        self.sample(with_pss=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample(with_pss=True)

    def _loop(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            self.sample(with_pss=count % self.pss_every == 0)

    def sample(self, with_pss: bool = False) -> None:
        rss = pss = 0
        procs = self.service.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if with_pss:
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", 0)
                else:
                    rss += proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_processes = max(self.peak_processes, len(procs))
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)


def wait_until(condition, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Call `condition()` until it returns something truthy (returned), for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the service is still starting
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
