"""The `conveyor` command line: help works, `init` makes a working project and never clobbers,
and every failure is one `error: ...` line with a non-zero exit, never a traceback.

Commands backed by the Client are only tested here for their error paths; what they do
against a real server is tested end to end in tests/e2e.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import main
from conveyor.config import load_config
from conveyor.sdk.task import Task
from conveyor.worker.discovery import discover

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-world"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A runner in an empty folder with no Conveyor settings in the environment."""
    monkeypatch.delenv("CONVEYOR_API_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_SECRET_KEY", raising=False)
    monkeypatch.delenv("CONVEYOR_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def fresh_task_modules() -> Iterator[None]:
    """Task discovery imports `tasks.*` with the project on sys.path; undo it after the test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name == "tasks" or name.startswith("tasks."):
            del sys.modules[name]


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def assert_one_error_line(result: Result, *, code: int = 1) -> str:
    """The promise for every failure: exit code, one `error:` line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- help and version ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["init", "--help"],
        ["dev", "--help"],
        ["trigger", "--help"],
        ["runs", "--help"],
        ["runs", "list", "--help"],
        ["runs", "show", "--help"],
        ["runs", "cancel", "--help"],
        ["runs", "replay", "--help"],
        ["runs", "logs", "--help"],
        ["server", "--help"],
        ["login", "--help"],
        ["projects", "--help"],
        ["projects", "create", "--help"],
        ["projects", "list", "--help"],
        ["keys", "--help"],
        ["keys", "show", "--help"],
        ["keys", "rotate", "--help"],
    ],
)
def test_help_works_for_every_command(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert result.stderr == ""


def test_the_bare_command_shows_the_help(runner: CliRunner) -> None:
    result = invoke(runner)
    assert result.exit_code == 0
    assert "conveyor dev" in result.stdout


def test_version_is_printed(runner: CliRunner) -> None:
    from conveyor import __version__

    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"conveyor {__version__}"


def test_an_unknown_command_is_one_usage_line(runner: CliRunner) -> None:
    line = assert_one_error_line(invoke(runner, "deplo"), code=2)
    assert "deplo" in line


def test_an_unknown_option_is_one_usage_line(runner: CliRunner) -> None:
    line = assert_one_error_line(invoke(runner, "runs", "list", "--colour", "red"), code=2)
    assert "--colour" in line
    assert "conveyor runs list --help" in line


def test_a_bad_status_is_one_usage_line(runner: CliRunner) -> None:
    line = assert_one_error_line(invoke(runner, "runs", "list", "--status", "DONE"), code=2)
    assert "DONE" in line


# -- init ------------------------------------------------------------------------------------


def test_init_writes_conveyor_toml_and_an_example_task(
    runner: CliRunner, tmp_path: Path, fresh_task_modules: None
) -> None:
    target = tmp_path / "billing"
    result = invoke(runner, "init", str(target), "--project", "proj_billing")
    assert result.exit_code == 0, result.output
    assert "conveyor dev" in result.stdout
    assert (target / "conveyor.toml").is_file()
    assert (target / "tasks" / "example.py").is_file()

    config = load_config(target)
    assert config.project == "proj_billing"
    assert config.source == target / "conveyor.toml"
    tasks = discover(config)
    assert list(tasks) == ["hello-world"]
    assert isinstance(tasks["hello-world"], Task)


def test_init_names_the_project_after_its_folder(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "My Shop"
    assert invoke(runner, "init", str(target)).exit_code == 0
    assert load_config(target).project == "proj_my_shop"


def test_init_appends_to_an_existing_pyproject_without_clobbering(
    runner: CliRunner, tmp_path: Path, fresh_task_modules: None
) -> None:
    original = '[project]\nname = "shop"\nversion = "1.0"\n\n[tool.ruff]\nline-length = 88\n'
    (tmp_path / "pyproject.toml").write_text(original)
    result = invoke(runner, "init")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(original)
    assert "[tool.conveyor]" in text
    assert not (tmp_path / "conveyor.toml").exists()
    config = load_config(tmp_path)
    assert config.source == tmp_path / "pyproject.toml"
    assert list(discover(config)) == ["hello-world"]


def test_a_second_init_is_refused_and_changes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    assert invoke(runner, "init").exit_code == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = assert_one_error_line(invoke(runner, "init"))
    assert "already" in line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_refuses_a_pyproject_that_already_has_the_table(
    runner: CliRunner, tmp_path: Path
) -> None:
    original = '[project]\nname = "shop"\n\n[tool.conveyor]\nproject = "proj_shop"\n'
    (tmp_path / "pyproject.toml").write_text(original)
    line = assert_one_error_line(invoke(runner, "init"))
    assert "[tool.conveyor]" in line
    assert (tmp_path / "pyproject.toml").read_text() == original
    assert not (tmp_path / "tasks").exists()


def test_init_refuses_a_pyproject_it_cannot_parse(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname = 1\n")
    line = assert_one_error_line(invoke(runner, "init"))
    assert "pyproject.toml" in line and "invalid TOML" in line
    assert (tmp_path / "pyproject.toml").read_text() == "[project\nname = 1\n"


def test_init_keeps_an_existing_example_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "example.py").write_text("# mine\n")
    result = invoke(runner, "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tasks" / "example.py").read_text() == "# mine\n"
    assert "kept" in result.stdout


def test_init_refuses_a_bad_project_name(runner: CliRunner, tmp_path: Path) -> None:
    assert_one_error_line(invoke(runner, "init", "--project", 'bad "name"'), code=2)
    assert list(tmp_path.iterdir()) == []


# -- dev -------------------------------------------------------------------------------------


def test_dev_without_a_config_is_one_error_line(runner: CliRunner) -> None:
    line = assert_one_error_line(invoke(runner, "dev"))
    assert "conveyor init" in line


def test_dev_with_a_bad_config_names_the_key_and_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text('machine = "huge"\n')
    line = assert_one_error_line(invoke(runner, "dev"))
    assert "machine" in line and "conveyor.toml" in line


# -- trigger ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["{name: Ada}", "{'name': 'Ada'}", '{"name": "Ada"', "nope"])
def test_trigger_refuses_a_payload_that_is_not_json(runner: CliRunner, payload: str) -> None:
    line = assert_one_error_line(
        invoke(runner, "trigger", "hello-world", "--payload", payload), code=2
    )
    assert line.startswith("error: --payload is not valid JSON: ")


def test_trigger_reads_the_payload_file_and_names_it_when_wrong(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "payload.json").write_text("{not json")
    line = assert_one_error_line(
        invoke(runner, "trigger", "t", "--payload", "@payload.json"), code=2
    )
    assert "payload.json is not valid JSON" in line
    line = assert_one_error_line(
        invoke(runner, "trigger", "t", "--payload", "@missing.json"), code=2
    )
    assert "not found" in line and "missing.json" in line


def test_trigger_refuses_a_malformed_option(runner: CliRunner) -> None:
    line = assert_one_error_line(invoke(runner, "trigger", "t", "--option", "ttl"), code=2)
    assert "key=value" in line


def test_trigger_refuses_an_option_given_twice(runner: CliRunner) -> None:
    line = assert_one_error_line(
        invoke(runner, "trigger", "t", "--queue", "a", "--option", "queue=b"), code=2
    )
    assert "--queue" in line


def test_trigger_against_an_unreachable_server_is_one_line(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = assert_one_error_line(
        invoke(
            runner,
            "trigger",
            "t",
            "--payload",
            "{}",
            "--api-url",
            url,
            "--secret-key",
            "cv_dev_test",
        )
    )
    assert "cannot reach" in line


# -- runs ------------------------------------------------------------------------------------


def test_runs_show_against_an_unreachable_server_is_one_line(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = assert_one_error_line(
        invoke(runner, "runs", "show", "run_123", "--api-url", url, "--secret-key", "cv_dev_test")
    )
    assert "cannot reach" in line


def test_connection_options_work_on_the_group_too(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = assert_one_error_line(
        invoke(runner, "--api-url", url, "--secret-key", "cv_dev_test", "runs", "list")
    )
    assert "cannot reach" in line


def test_the_secret_key_is_read_from_the_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", "cv_dev_test")
    line = assert_one_error_line(invoke(runner, "runs", "cancel", "run_123"))
    assert "cannot reach" in line


def test_a_missing_secret_key_says_how_to_set_one(runner: CliRunner) -> None:
    line = assert_one_error_line(
        invoke(runner, "runs", "replay", "run_123", "--api-url", f"http://127.0.0.1:{free_port()}")
    )
    assert "CONVEYOR_SECRET_KEY" in line


# -- unexpected failures and Ctrl-C ----------------------------------------------------------


def test_an_unexpected_exception_is_one_line_with_a_debug_hint(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something deep\nbroke")

    monkeypatch.setattr("conveyor.cli.dev.load_config", broken)
    line = assert_one_error_line(invoke(runner, "dev"))
    assert "RuntimeError" in line and "CONVEYOR_DEBUG=1" in line


def test_ctrl_c_exits_130_quietly(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("conveyor.cli.dev.load_config", interrupted)
    result = invoke(runner, "dev")
    assert result.exit_code == 130
    assert "Traceback" not in result.output
    assert "error" not in result.output


# -- the bundled example project -------------------------------------------------------------


def test_the_example_project_defines_every_example_task(fresh_task_modules: None) -> None:
    tasks = discover(load_config(EXAMPLE))
    assert set(tasks) == {
        "hello-world",
        "word-count",
        "send-welcome-email",
        "build-report",
        "export-csv",
        "flaky-api-call",
        "charge-card",
        "convert-price",
        "onboard-user",
        "nightly-cleanup",
        "customer-digest",
    }
    assert tasks["nightly-cleanup"].schedule is not None
    assert tasks["nightly-cleanup"].schedule.cron == "0 3 * * *"
    assert tasks["customer-digest"].schedule is not None
    assert tasks["customer-digest"].schedule.cron is None
    assert tasks["build-report"].queue.name == tasks["export-csv"].queue.name == "reports"
    assert tasks["build-report"].queue.concurrency_limit == 2
    assert tasks["send-welcome-email"].schema is not None
    assert not tasks["word-count"].is_async


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "--env", "preview"], "--env preview needs --branch NAME"),
        (["deploy", "--env", "prod", "--branch", "x"], "--branch only goes with --env preview"),
        (["deploy", "--env", "dev"], "'dev' is not one of"),
        (["worker", "--env", "preview"], "--env preview needs --branch NAME"),
        (
            ["promote", "20270101.1", "--env", "staging", "--branch", "x"],
            "--branch only goes with --env preview",
        ),
    ],
)
def test_deploy_commands_refuse_a_wrong_environment_in_one_line(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and message in result.output
    assert result.output.count("\n") == 1


def test_a_deploy_without_a_key_or_a_login_says_how_to_get_one(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CONVEYOR_ACCESS_TOKEN", raising=False)
    (tmp_path / "conveyor.toml").write_text('project = "proj_x"\ndirs = ["tasks"]\n')
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.py").write_text(
        "from conveyor import task\n\n@task(id='a')\nasync def a(p):\n    return p\n"
    )
    result = runner.invoke(main, ["deploy", "--env", "prod", "--api-url", "http://127.0.0.1:9"])
    assert (
        result.exit_code == 1
        and "not logged in" in result.output
        and result.output.count("\n") == 1
    )
