"""`conveyor alerts create|list|test|deliveries|delete` against a live server: a webhook's secret
printed once, channels and deliveries listed, one-line errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import main
from tests.integration.conftest import KEY

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")


@pytest.fixture
def cli(live_server: str, monkeypatch: pytest.MonkeyPatch):
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Result:
        return CliRunner().invoke(
            main,
            ["alerts", *args, "--api-url", live_server, "--secret-key", KEY],
            catch_exceptions=False,
        )

    return run


def test_create_list_test_and_delete(cli, backend: Backend) -> None:
    made = cli("create", "--on", "run.failed", "--webhook", "https://example.com/h", "--task", "x")
    assert made.exit_code == 0, made.output
    assert "Signing secret  whsec_" in made.output
    secret = made.output.split("Signing secret  ")[1].split()[0]
    alert_id = made.output.split()[1].rstrip(":")
    backlog = cli(
        "create", "--on", "queue.backlog", "--backlog", "5", "--for", "2s", "--email", "a@b.example"
    )
    assert backlog.exit_code == 0, backlog.output
    assert "Signing secret" not in backlog.output
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    assert alert_id in listed.output and secret not in listed.output
    assert "> 5 for 2s" in listed.output and "task x, window 60s" in listed.output
    as_json = json.loads(cli("list", "--json").output)
    assert [c["event"] for c in as_json] == ["run.failed", "queue.backlog"]
    tested = cli("test", alert_id)
    assert tested.exit_code == 0, tested.output
    deliveries = cli("deliveries")
    assert "alert.test" in deliveries.output and "pending" in deliveries.output
    gone = cli("delete", alert_id)
    assert gone.exit_code == 0 and f"Deleted {alert_id}" in gone.output
    assert [c.event for c in backend.engine.alerts.list(backend.env.id).data] == ["queue.backlog"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create", "--on", "run.failed"), "give one of --webhook URL"),
        (("create", "--on", "run.failed", "--webhook", "ftp://x", "--email", "a@b.c"), "one of"),
        (("create", "--on", "run.failed", "--webhook", "ftp://x"), "not an http(s) URL"),
        (("create", "--on", "run.failed", "--email", "nope"), "not an email address"),
        (("create", "--on", "deploy.failed", "--email", "a@b.example", "--for", "5m"), "only"),
        (("create", "--on", "queue.backlog", "--email", "a@b.example", "--for", "soon"), "for"),
        (("create", "--on", "run.exploded", "--email", "a@b.example"), "run.exploded"),
        (("delete", "alert_nope"), "no alert channel 'alert_nope'"),
        (("test", "alert_nope"), "no alert channel"),
    ],
)
def test_errors_are_one_line(cli, args: tuple[str, ...], says: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert says in result.output, result.output
    assert "Traceback" not in result.output
