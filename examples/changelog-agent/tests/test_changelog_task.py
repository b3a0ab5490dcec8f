"""The task on a real `conveyor dev`: it reads the history, returns at once when there is nothing
new, and without ANTHROPIC_API_KEY fails at once with a message that says what to set (these tests
never call the model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from changelog_testing import git

from conveyor import Client
from conveyor.testing.platform import DevPlatform


@pytest.fixture(scope="module")
def client(platform: DevPlatform) -> Iterator[Client]:
    with Client(api_url=platform.api_url, secret_key=platform.secret_key) as c:
        yield c


def test_without_an_api_key_the_run_fails_at_once_saying_what_to_set(
    client: Client, repo: Path
) -> None:
    handle = client.trigger("write-changelog", {"repo": str(repo), "version": "1.1.0"})
    run = client.runs.poll(handle.id, interval=0.2, timeout=60)
    assert run.status == "FAILED" and run.attempts == 1
    assert (
        run.error is not None and "ANTHROPIC_API_KEY is not set on the worker" in run.error.message
    )
    logs = " ".join(line.message for line in client.runs.logs(handle.id))
    assert "history read" in logs


def test_nothing_new_since_the_last_tag_completes_without_the_model(
    client: Client, repo: Path
) -> None:
    git(repo, "tag", "v1.1")
    run = client.runs.poll(
        client.trigger("write-changelog", {"repo": str(repo)}).id, interval=0.2, timeout=60
    )
    assert run.status == "COMPLETED"
    assert run.output == {
        "version": "Unreleased",
        "range": "v1.1..HEAD",
        "commits": 0,
        "changelog": "",
    }


def test_a_path_that_is_no_repository_fails_without_retries(client: Client, tmp_path: Path) -> None:
    run = client.runs.poll(
        client.trigger("write-changelog", {"repo": str(tmp_path)}).id, interval=0.2, timeout=60
    )
    assert run.status == "FAILED" and run.attempts == 1
    assert run.error is not None and "is not a git repository" in run.error.message
