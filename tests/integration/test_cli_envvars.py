"""`conveyor env set|unset|list|import` against a live server: values set from an argument,
`NAME=VALUE` or stdin, never printed; names and hashes listed; one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import main
from tests.integration.conftest import KEY

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")

SECRET = "cli-secret-value-5d8a"


@pytest.fixture
def cli(live_server: str, monkeypatch: pytest.MonkeyPatch):
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            main,
            ["env", *args, "--api-url", live_server, "--secret-key", KEY],
            input=input,
            catch_exceptions=False,
        )

    return run


def test_set_list_import_unset_never_print_a_value(cli, backend: Backend, tmp_path: Path) -> None:
    outputs: list[str] = []
    for args, stdin in (
        (("set", "API_TOKEN", SECRET), None),
        (("set", f"DB_URL={SECRET}-db"), None),
        (("set", "FROM_STDIN", "-"), f"{SECRET}-stdin\n"),
    ):
        result = cli(*args, input=stdin)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Set ")
        outputs.append(result.output)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f'A=1\nB="{SECRET}-file"\n')
    imported = cli("import", str(dotenv))
    assert imported.exit_code == 0, imported.output
    assert "Set 2 variables: A, B." in imported.output
    listed = cli("list")
    assert listed.exit_code == 0
    names = [line.split()[0] for line in listed.output.splitlines()[1:]]
    assert names == ["A", "API_TOKEN", "B", "DB_URL", "FROM_STDIN"]
    as_json = cli("list", "--json")
    unset = cli("unset", "A")
    assert unset.exit_code == 0 and "Unset A." in unset.output
    outputs += [imported.output, listed.output, as_json.output, unset.output]
    assert all(SECRET not in out for out in outputs)
    assert backend.engine.envvars.resolved(backend.env.id) == {
        "API_TOKEN": SECRET,
        "B": f"{SECRET}-file",
        "DB_URL": f"{SECRET}-db",
        "FROM_STDIN": f"{SECRET}-stdin",
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "NO_VALUE"), "give a value"),
        (("set", "1BAD", "x"), "not a variable name"),
        (("set", "CONVEYOR_X", "x"), "reserved"),
        (("unset", "MISSING"), "no environment variable named 'MISSING'"),
        (("import", "/nonexistent/.env"), "cannot read"),
        (("list", "--env", "prod"), "--project and --env go together"),
    ],
)
def test_errors_are_one_line(cli, args: tuple[str, ...], says: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert says in result.output
    assert "Traceback" not in result.output
