"""Fixtures of the example's tests: the example's code on sys.path, a real `conveyor dev` on a
copy of the example (its own port, database and storage), and the GraphQL backend in-process.

These tests run from this folder (`./scripts/test`) and as part of the Conveyor repository's
own test run, so they use nothing of the repository's tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    """A running `conveyor dev` on a copy of the example, in its own process group."""

    root: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret_key(self) -> str:
        return str(json.loads((self.root / ".conveyor" / "dev.json").read_text())["secret_key"])

    @property
    def data(self) -> Path:
        return Path(self.env["TTS_DATA_DIR"])

    def output(self) -> str:
        log = self.root / "dev.out"
        return log.read_text(errors="replace") if log.exists() else ""

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(self.port)],
            cwd=self.root, stdout=(self.root / "dev.out").open("wb"), stderr=subprocess.STDOUT,
            env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"conveyor dev exited early:\n{self.output()}")
            try:
                if "Loaded tasks" in self.output() and httpx.get(f"{self.api_url}/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"conveyor dev did not start in {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng (the pipeline tests speak for real)")
    root = tmp_path_factory.mktemp("tts") / "example"
    root.mkdir()
    for name in ("tasks", "tts_pipeline"):
        shutil.copytree(EXAMPLE / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLE / "pyproject.toml", root / "pyproject.toml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TTS_DATA_DIR": str(root / "data"),
           "TTS_PROVIDER": "espeak",  # offline, even where OPENAI_API_KEY is set
           "TTS_TEST_FAULTS": "1",  # the fail-attempts markers of tts_pipeline/faults.py
           "TTS_PUBLIC_BASE_URL": "http://testserver/media"}
    for name in ("TTS_S3_BUCKET", "TTS_STORAGE_DIR", "TTS_DATABASE", "CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY"):
        env.pop(name, None)
    server = Platform(root, free_port(), env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def backend(platform: Platform) -> Iterator[Any]:
    """The GraphQL backend in this process, triggering on the platform, sharing its data folder."""
    from starlette.testclient import TestClient
    from tts_pipeline.backend.app import ConveyorStarter, create_app
    from tts_pipeline.jobs import JobStore
    from tts_pipeline.storage import LocalStorage

    app = create_app(jobs=JobStore(platform.data / "jobs.db"),
                     start_run=ConveyorStarter(api_url=platform.api_url, secret_key=platform.secret_key),
                     storage=LocalStorage(platform.data / "storage", public_base_url="http://testserver/media"))
    with TestClient(app) as client:
        yield client
