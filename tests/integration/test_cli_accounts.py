"""`conveyor login`, `conveyor projects` and `conveyor keys` against a real server (uvicorn on a
free port over SQLite), and the account calls of Client and AsyncClient they rest on."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from conveyor import AsyncClient, AuthenticationError, Client
from conveyor.cli.main import main

if TYPE_CHECKING:
    from conftest import Backend


@pytest.fixture
def token(backend: Backend) -> str:
    made = backend.engine.accounts.bootstrap_admin()
    assert made is not None
    return made


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in (
        "CONVEYOR_API_URL",
        "CONVEYOR_SECRET_KEY",
        "CONVEYOR_ACCESS_TOKEN",
        "CONVEYOR_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_error_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def login(url: str, token: str) -> None:
    result = cli("login", "--api-url", url, "--token", token)
    assert result.exit_code == 0, result.output


# -- login -----------------------------------------------------------------------------------------


def test_login_checks_the_token_and_stores_it_for_its_owner_alone(
    live_server: str, token: str, config_home: Path
) -> None:
    result = cli("login", "--api-url", live_server, "--token", token)
    assert result.exit_code == 0, result.output
    assert "as admin" in result.stdout and token not in result.output
    path = config_home / "conveyor" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"api_url": live_server, "tokens": {live_server: token}}


def test_login_asks_for_the_token_when_not_given(
    live_server: str, token: str, config_home: Path
) -> None:
    result = cli("login", "--api-url", live_server, input=token + "\n")
    assert result.exit_code == 0, result.output
    assert (
        json.loads((config_home / "conveyor" / "config.json").read_text())["tokens"][live_server]
        == token
    )


def test_login_with_an_unknown_token_stores_nothing(live_server: str, config_home: Path) -> None:
    line = one_error_line(cli("login", "--api-url", live_server, "--token", "cv_pat_" + "0" * 40))
    assert "personal access token" in line
    assert not (config_home / "conveyor" / "config.json").exists()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("cv_dev_" + "k" * 32, "environment's secret key"),
        ("hello", "starts with cv_pat_"),
        ("", "no token given"),
    ],
)
def test_login_refuses_what_is_no_token_in_one_line(
    given: str, says: str, config_home: Path
) -> None:
    assert says in one_error_line(
        cli("login", "--api-url", "http://127.0.0.1:9", "--token", given), code=2
    )


def test_login_to_an_unreachable_server_is_one_line(free_url: str, config_home: Path) -> None:
    assert "cannot reach Conveyor" in one_error_line(
        cli("login", "--api-url", free_url, "--token", "cv_pat_x")
    )


# -- projects and keys -----------------------------------------------------------------------------


def test_projects_create_and_list(live_server: str, token: str, config_home: Path) -> None:
    login(live_server, token)
    created = cli("projects", "create", "Web Shop")
    assert created.exit_code == 0, created.output
    assert "Created project Web Shop (proj_" in created.stdout
    made = json.loads(cli("projects", "create", "API", "--slug", "api", "--json").stdout)
    assert made["slug"] == "api" and [e["slug"] for e in made["environments"]] == [
        "dev",
        "staging",
        "prod",
    ]
    listed = json.loads(cli("projects", "list", "--json").stdout)
    assert {"web-shop", "api"} <= {p["slug"] for p in listed}
    table = cli("projects", "list").stdout
    assert made["id"] in table and "dev,staging,prod" in table
    assert "already has a project" in one_error_line(cli("projects", "create", "web shop"))


def test_keys_show_prints_the_key_of_each_environment(
    live_server: str, token: str, config_home: Path
) -> None:
    login(live_server, token)
    cli("projects", "create", "Shop")
    prefixes = {"dev": "cv_dev_", "staging": "cv_stg_", "prod": "cv_prod_"}
    for env, prefix in prefixes.items():
        result = cli("keys", "show", "--project", "shop", "--env", env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().startswith(prefix)
        with Client(live_server, result.stdout.strip()) as client:
            assert list(client.runs.list()) == []
    preview = json.loads(
        cli(
            "keys", "show", "-p", "shop", "--env", "preview", "--branch", "fix/login", "--json"
        ).stdout
    )
    assert preview["environment"] == "preview-fix-login" and preview["secret_key"].startswith(
        "cv_prev_"
    )


def test_keys_rotate_revokes_the_old_key(live_server: str, token: str, config_home: Path) -> None:
    login(live_server, token)
    cli("projects", "create", "Shop")
    old = cli("keys", "show", "-p", "shop", "--env", "prod").stdout.strip()
    rotated = json.loads(cli("keys", "rotate", "-p", "shop", "--env", "prod", "--json").stdout)
    assert rotated["rotated"] is True and rotated["secret_key"] != old
    with Client(live_server, old) as client, pytest.raises(AuthenticationError):
        client.runs.list()
    with Client(live_server, rotated["secret_key"]) as client:
        assert list(client.runs.list()) == []
    assert (
        cli("keys", "show", "-p", "shop", "--env", "prod").stdout.strip() == rotated["secret_key"]
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--env", "preview"], "--env preview needs --branch"),
        (["--env", "prod", "--branch", "x"], "--branch only goes with --env preview"),
        (["--env", "qa"], "'qa' is not one of"),
    ],
)
def test_bad_key_arguments_are_one_usage_line(
    args: list[str], says: str, config_home: Path
) -> None:
    assert says in one_error_line(cli("keys", "show", "--project", "shop", *args), code=2)


def test_account_commands_without_login_say_how_to_log_in(
    live_server: str, config_home: Path
) -> None:
    line = one_error_line(cli("projects", "list", "--api-url", live_server))
    assert f"not logged in to {live_server}" in line and "conveyor login" in line


def test_a_stored_token_is_sent_only_to_its_own_server(
    live_server: str, token: str, free_url: str, config_home: Path
) -> None:
    login(live_server, token)
    assert f"not logged in to {free_url}" in one_error_line(
        cli("projects", "list", "--api-url", free_url)
    )


def test_the_access_token_can_come_from_the_environment(
    live_server: str, token: str, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ACCESS_TOKEN", token)
    result = cli("projects", "list", "--api-url", live_server, "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), list)


def test_an_unknown_project_is_one_line(live_server: str, token: str, config_home: Path) -> None:
    login(live_server, token)
    assert "project 'nope' not found" in one_error_line(
        cli("keys", "show", "-p", "nope", "--env", "dev")
    )


def test_a_corrupt_config_file_is_one_line(live_server: str, config_home: Path) -> None:
    path = config_home / "conveyor" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert str(path) in one_error_line(cli("projects", "list"))


# -- the client calls underneath ------------------------------------------------------------------


def test_async_client_manages_projects_and_keys(live_server: str, token: str) -> None:
    async def scenario() -> tuple[str, str, str]:
        async with AsyncClient(live_server, token) as client:
            project = await client.projects.create("Async Shop")
            env = await client.projects.preview_environment(project.id, "feature-1")
            key = await client.projects.key(project.id, env.slug)
            new = await client.projects.rotate_key(project.id, env.slug)
            assert [p.id for p in await client.projects.list()].count(project.id) == 1
            return env.slug, key.secret_key, new.secret_key

    slug, old, new = asyncio.run(scenario())
    assert (
        slug == "preview-feature-1"
        and old.startswith("cv_prev_")
        and new.startswith("cv_prev_")
        and old != new
    )
    with Client(live_server, token) as client:
        assert client.projects.whoami().name == "admin"
        with pytest.raises(AuthenticationError, match="not an environment key"):
            client.runs.list()
