"""Conveyor processes on campaign hosts: `conveyor server`, `conveyor worker` and the delaying
proxy, each started in its host's namespace and killed for real (SIGKILL to the whole tree)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.campaign.net import Host

REPO = Path(__file__).resolve().parents[2]
TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@dataclass
class Proc:
    name: str
    host: Host
    args: list[str]
    out: Path
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log(self) -> Path:
        return self.out / f"{self.name}-{self.starts}.out"

    def start(
        self, ready: str | None = None, timeout: float = 60, extra_env: dict[str, str] | None = None
    ) -> str:
        # two heals may both start it (a retried start and a later fault's): never two of it
        if self.alive:
            return self.output()
        self.starts += 1
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
            **self.env,
            **(extra_env or {}),
        }
        self.proc = subprocess.Popen(
            self.host.cmd(*self.args),
            cwd=self.cwd,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if ready is None:
            return ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if ready in text:
                return text
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{text[-3000:]}")
            time.sleep(0.1)
        self.kill9()  # never two of it
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[psutil.Process]:
        if not self.alive:
            return []
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """SIGKILL the process and everything under it at once, as a machine crash would."""
        if self.proc is None:
            return
        processes = self.children()
        try:
            processes.insert(0, psutil.Process(self.proc.pid))
        except psutil.NoSuchProcess:
            pass
        for process in processes:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(10)
        psutil.wait_procs(processes, timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, as an operator stops it; SIGKILL if it has not ended in `timeout` seconds."""
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
        for child in self.children():
            child.kill()


def conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor.cli.main", *args]


def skewed(seconds: int) -> dict[str, str]:
    """The environment that runs a process (and its executors) `seconds` off the real wall clock;
    the monotonic clock stays true."""
    if seconds == 0:
        return {}
    return {
        "LD_PRELOAD": FAKETIME_LIB,
        "FAKETIME": f"{seconds:+d}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }
