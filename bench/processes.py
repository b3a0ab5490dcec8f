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
from typing import Any

import psutil


class ServiceExited(RuntimeError):
    """A service the harness started exited while it was waited for; `wait_until` stops at once."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A command started in a new session, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
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
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
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


class Usage:
    """What a service's process tree used while a workload ran, sampled in a thread.

    `peak_rss` is the largest sum of RSS over the tree (it counts pages shared between forked
    processes once per process). `peak_pss` is the largest sum of PSS (shared pages split between
    the processes sharing them), sampled less often as it is costly. `cpu` is the CPU seconds the
    tree used (user + system, per pid at its last sample), `cpu_main` the part of the service's
    own process (Conveyor's dev process; Celery's main worker process, without its pool). Around it,
    the CPU seconds of the whole machine, of Redis (from INFO) and of this process are recorded, so
    CPU taken by processes outside the benchmark (noise) shows in `cpu_other`.
    """

    def __init__(
        self,
        service: Service,
        interval: float = 0.05,
        pss_every: int = 10,
        redis_client: object | None = None,
    ) -> None:
        self.service = service
        self.interval = interval
        self.pss_every = pss_every
        self.redis = redis_client
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._lock = threading.Lock()
        self._baseline = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"usage-{service.name}", daemon=True
        )
        self.seconds = 0.0
        self.cpu = self.cpu_main = self.cpu_machine = self.cpu_redis = self.cpu_client = (
            self.cpu_other
        ) = 0.0

    def __enter__(self) -> Usage:
        self._t0 = time.monotonic()
        self._machine0 = _busy(psutil.cpu_times())
        self._client0 = _own_cpu()
        self._redis0 = _redis_cpu(self.redis)
        self.sample(with_pss=True)
        self._baseline = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample(with_pss=True)
        self.seconds = time.monotonic() - self._t0
        self.cpu_machine = _busy(psutil.cpu_times()) - self._machine0
        self.cpu_client = _own_cpu() - self._client0
        self.cpu_redis = _redis_cpu(self.redis) - self._redis0
        with self._lock:
            used = {
                pid: self._cpu_last[pid] - self._cpu_first.get(pid, 0.0) for pid in self._cpu_last
            }
        self.cpu = sum(used.values())
        self.cpu_main = used.get(self.service.pid, 0.0)
        self.cpu_other = max(0.0, self.cpu_machine - self.cpu - self.cpu_client - self.cpu_redis)

    def as_dict(self) -> dict[str, float]:
        return {
            "peak_rss": self.peak_rss,
            "peak_pss": self.peak_pss,
            "processes": self.peak_processes,
            "cpu": self.cpu,
            "cpu_main": self.cpu_main,
            "cpu_machine": self.cpu_machine,
            "cpu_redis": self.cpu_redis,
            "cpu_client": self.cpu_client,
            "cpu_other": self.cpu_other,
            "window": self.seconds,
        }

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
                times = proc.cpu_times()
                with self._lock:
                    # a process seen for the first time after the start: count it from its birth
                    self._cpu_first.setdefault(
                        proc.pid, 0.0 if self._baseline else times.user + times.system
                    )
                    self._cpu_last[proc.pid] = times.user + times.system
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_processes = max(self.peak_processes, len(procs))
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)


def _busy(times: object) -> float:
    """CPU seconds spent running processes, machine-wide (user, nice, system). Interrupt work
    (loopback traffic the benchmark itself causes), steal and guest (already in user) are left
    out."""
    return float(times.user + times.nice + times.system)  # type: ignore[attr-defined]


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _redis_cpu(client: object | None) -> float:
    if client is None:
        return 0.0
    try:
        info = client.info("cpu")  # type: ignore[attr-defined]
        return float(info["used_cpu_user"] + info["used_cpu_sys"])
    except Exception:
        return 0.0


def drain_rate(done_at: list[float], enqueued: float, last: float) -> float | None:
    """Runs/s completed after the last trigger call returned: the worker's pace once the client
    no longer competes for the cores (None if too little was left to time)."""
    after = sum(1 for at in done_at if at > enqueued)
    if after < 100 or last - enqueued < 0.05:
        return None
    return after / (last - enqueued)


def wait_until(condition, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Call `condition()` until it returns something truthy (returned), for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except ServiceExited:
            raise
        except Exception as exc:  # the service is still starting
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")


class GroupUsage:
    """`Usage` over several services at once (Conveyor's server and worker): CPU and peak memory
    summed over them, and the machine's other CPU recomputed so each service is counted once."""

    def __init__(self, services: list[Service]) -> None:
        self.parts = [Usage(service) for service in services]

    def __enter__(self) -> GroupUsage:
        for part in self.parts:
            part.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for part in self.parts:
            part.__exit__(*exc)

    def as_dict(self) -> dict[str, Any]:
        first = self.parts[0]
        cpu = sum(p.cpu for p in self.parts)
        return {
            "peak_rss": sum(p.peak_rss for p in self.parts),
            "peak_pss": sum(p.peak_pss for p in self.parts),
            "processes": sum(p.peak_processes for p in self.parts),
            "cpu": cpu,
            "cpu_by_service": {p.service.name: p.cpu for p in self.parts},
            "cpu_machine": first.cpu_machine,
            "cpu_client": first.cpu_client,
            "cpu_other": max(0.0, first.cpu_machine - cpu - first.cpu_client),
            "window": first.seconds,
        }


def project_key(server: Service, api_url: str, project: str, timeout: float) -> str:
    """The prod secret key of a new project on a fresh `conveyor server`: its admin token from
    the server's log, then the project made with it."""
    import re

    import httpx

    def admin_token() -> str | None:
        if not server.alive():
            raise ServiceExited(f"conveyor server exited:\n{server.log_tail()}")
        found = re.search(r"cv_pat_[0-9A-Za-z_]+", server.log_path.read_text(errors="replace"))
        return found.group(0) if found else None

    token = wait_until(admin_token, timeout, what="conveyor server to print its admin token")

    def key() -> str:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as http:
            http.post("/api/v1/projects", json={"name": project}).raise_for_status()
            reply = http.get(f"/api/v1/projects/{project}/environments/prod/key")
            reply.raise_for_status()
            return str(reply.json()["secret_key"])

    return str(wait_until(key, timeout, what="conveyor server to make the project and its key"))
