"""`conveyor runs cancel|replay` by filter against a live server: the count of matching runs, a
confirmation (or --yes), progress until done, and one-line errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import main
from conveyor.models import RunStatus
from tests.integration.conftest import KEY
from tests.integration.test_http_bulk_actions import ticking  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings", "ticking")


@pytest.fixture
def cli(live_server: str, monkeypatch: pytest.MonkeyPatch):
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("conveyor.cli.bulk.POLL", 0.05)

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            main,
            ["runs", *args, "--api-url", live_server, "--secret-key", KEY],
            input=input,
            catch_exceptions=False,
        )

    return run


def statuses(backend: Backend, task: str) -> list[RunStatus]:
    runs, _ = backend.engine.runs.list(backend.env.id, task_id=task, limit=1000)
    return [r.status for r in runs]


def test_cancel_by_filter_counts_asks_and_follows_to_the_end(cli, backend: Backend) -> None:
    for i in range(3):
        backend.engine.tasks.trigger(backend.env.id, "hello", {"i": i})
    backend.engine.tasks.trigger(backend.env.id, "other", {})

    refused = cli("cancel", "--status", "queued", "--task", "hello", "--since", "1h", input="n\n")
    assert refused.exit_code == 1 and "Cancel 3 unfinished runs?" in refused.output
    assert statuses(backend, "hello") == [RunStatus.QUEUED] * 3

    done = cli("cancel", "--status", "queued", "--task", "hello", input="y\n")
    assert done.exit_code == 0, done.output
    assert "Canceled 3 runs" in done.output and "bulk_" in done.output
    assert "of 3 runs" in done.output  # a line of progress (the output is no terminal)
    assert statuses(backend, "hello") == [RunStatus.CANCELED] * 3
    assert statuses(backend, "other") == [RunStatus.QUEUED]

    nothing = cli("cancel", "--task", "hello", "--yes")
    assert nothing.exit_code == 0 and "No unfinished runs match" in nothing.output


def test_replay_by_filter_with_yes_and_json(cli, backend: Backend) -> None:
    for i in range(2):
        backend.engine.tasks.trigger(backend.env.id, "other", {"i": i})
    result = cli("replay", "--task", "other", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert '"status": "COMPLETED"' in result.stdout and '"done": 2' in result.stdout
    assert len(statuses(backend, "other")) == 4


def test_bad_invocations_are_one_line_errors(cli) -> None:
    neither = cli("cancel")
    assert neither.exit_code == 2 and "give a RUN_ID, or filters" in neither.output
    both = cli("replay", "run_x", "--task", "hello")
    assert both.exit_code == 2 and "not both" in both.output
    bad = cli("cancel", "--task", "hello", "--since", "soon", "--yes")
    assert bad.exit_code == 1 and "since" in bad.output and "Traceback" not in bad.output
    ended = cli("cancel", "--status", "failed", "--yes")
    assert ended.exit_code == 1 and "cannot be canceled" in ended.output
    assert len(ended.output.strip().splitlines()) == 1
