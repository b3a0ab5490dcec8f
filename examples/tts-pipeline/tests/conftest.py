"""Fixtures of the example's tests: the example's code on sys.path, a real `conveyor dev` on a
copy of the example (its own port, database and storage), and the GraphQL backend in-process.

These tests run from this folder (`./scripts/test`) and as part of the Conveyor repository's
own test run, so they use nothing of the repository's tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tts_testing import Platform

EXAMPLE = Path(__file__).resolve().parent.parent
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tts_testing import Platform  # after the example is on sys.path

    if shutil.which("espeak-ng") is None:
        pytest.fail(
            "espeak-ng is not installed: apt-get install espeak-ng (the pipeline tests speak for "
            "real)"
        )
    root = tmp_path_factory.mktemp("tts") / "example"
    root.mkdir()
    for name in ("tasks", "tts_pipeline"):
        shutil.copytree(EXAMPLE / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLE / "pyproject.toml", root / "pyproject.toml")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TTS_DATA_DIR": str(root / "data"),
        "TTS_PROVIDER": "espeak",  # offline, even where OPENAI_API_KEY is set
        "TTS_TEST_FAULTS": "1",  # the fail-attempts markers of tts_pipeline/faults.py
        "TTS_PUBLIC_BASE_URL": "http://testserver/media",
    }
    for name in (
        "TTS_S3_BUCKET",
        "TTS_STORAGE_DIR",
        "TTS_DATABASE",
        "CONVEYOR_API_URL",
        "CONVEYOR_SECRET_KEY",
    ):
        env.pop(name, None)
    server = Platform(root, env=env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def backend(platform: Platform) -> Iterator[Any]:
    """The GraphQL backend in this process, triggering on the platform, sharing its data folder."""
    from starlette.testclient import TestClient
    from tts_pipeline.backend.app import ConveyorRuns, create_app
    from tts_pipeline.jobs import JobStore
    from tts_pipeline.storage import LocalStorage

    app = create_app(
        jobs=JobStore(platform.data / "jobs.db"),
        runs=ConveyorRuns(api_url=platform.api_url, secret_key=platform.secret_key),
        storage=LocalStorage(platform.data / "storage", public_base_url="http://testserver/media"),
    )
    with TestClient(app) as client:
        yield client
