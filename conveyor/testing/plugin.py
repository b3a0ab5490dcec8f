"""The pytest plugin of Conveyor (entry point `pytest11`): the fixture `conveyor_platform`.

    @pytest.mark.conveyor_project("path/to/project")     # or conveyor_project in the ini options
    def test_signup_sends_the_welcome_email(conveyor_platform):
        handle = conveyor_platform.client.tasks.trigger("send-welcome", {"to": "ada@example.com"})
        run = conveyor_platform.client.runs.poll(handle.id)
        assert run.status == "COMPLETED"

The platform (conveyor/testing/local.py) starts on first use of `.client` (or on `.start(path)`)
and stops at the end of the test. Collecting tests imports nothing of the platform: a test
suite that does not use the fixture pays for nothing but this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conveyor.testing.local import LocalPlatform

MARKER = "conveyor_project"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        MARKER,
        "the Conveyor project conveyor_platform serves (a folder, relative to the rootdir)",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path): the Conveyor project the conveyor_platform fixture serves "
        "(relative to the rootdir)",
    )


def _project(request: pytest.FixtureRequest) -> Path | None:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str | Path):
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes one path: @pytest.mark.{MARKER}('path/to/project')"
            )
        value: str | Path | None = marker.args[0]
    else:
        value = request.config.getini(MARKER) or None
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(request.config.rootpath) / path


@pytest.fixture
def conveyor_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    """A real platform (API, engine, worker) on a temporary SQLite database, serving the tasks
    of a project: `.client` (a Client bound to it), `.async_client()`, `.api_url`,
    `.secret_key`, `.start(path)`. See docs/testing.md."""
    from conveyor.testing.local import LocalPlatform

    platform = LocalPlatform(tmp_path_factory.mktemp("conveyor"), project=_project(request))
    try:
        yield platform
    finally:
        platform.stop()
