"""The project config (docs/configuration.md): every key loads from pyproject.toml and from
conveyor.toml, and every mistake is one ConfigError that names the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import Config, load_config
from conveyor.errors import ConfigError

FULL_KEYS = """
project = "proj_shop"
dirs = ["tasks", "jobs/email"]
max_duration = 120
machine = "medium-2x"
concurrency_limit = 25

[{prefix}retries]
enabled_in_dev = false

[{prefix}retries.default]
max_attempts = 5
min_timeout_ms = 250
max_timeout_ms = 45000
factor = 1.5
randomize = false

[{prefix}build]
external = ["numpy", "torch"]
"""


def write_pyproject(folder: Path, body: str, *, header: str = "[tool.conveyor]\n") -> Path:
    path = folder / "pyproject.toml"
    path.write_text('[project]\nname = "shop"\nversion = "0.1.0"\n\n' + header + body)
    return path


def write_conveyor_toml(folder: Path, body: str) -> Path:
    path = folder / "conveyor.toml"
    path.write_text(body)
    return path


def assert_full_config(config: Config, source: Path) -> None:
    assert config.project == "proj_shop"
    assert config.dirs == ["tasks", "jobs/email"]
    assert config.max_duration == 120
    assert config.machine == "medium-2x"
    assert config.concurrency_limit == 25
    assert config.retries.enabled_in_dev is False
    default = config.retries.default
    assert (default.max_attempts, default.min_timeout_ms, default.max_timeout_ms) == (5, 250, 45000)
    assert default.factor == 1.5
    assert default.randomize is False
    assert config.build.external == ["numpy", "torch"]
    assert config.source == source
    assert config.root == source.parent
    assert config.task_dirs() == [source.parent / "tasks", source.parent / "jobs" / "email"]


def test_every_key_loads_from_pyproject_toml(tmp_path: Path) -> None:
    source = write_pyproject(tmp_path, FULL_KEYS.format(prefix="tool.conveyor."))
    assert_full_config(load_config(tmp_path), source)


def test_every_key_loads_from_conveyor_toml(tmp_path: Path) -> None:
    source = write_conveyor_toml(tmp_path, FULL_KEYS.format(prefix=""))
    assert_full_config(load_config(tmp_path), source)


def test_an_empty_table_gives_the_defaults(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    config = load_config(tmp_path)
    assert config.project == "proj_local"
    assert config.dirs == ["tasks"]
    assert config.machine == "small-1x"
    assert config.max_duration is None
    assert config.retries.enabled_in_dev is True
    assert config.retries.default.policy().max_attempts == 3


def test_the_config_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    source = write_pyproject(tmp_path, 'project = "proj_up"\n')
    deep = tmp_path / "tasks" / "billing"
    deep.mkdir(parents=True)
    config = load_config(deep)
    assert config.project == "proj_up"
    assert config.source == source
    assert config.root == tmp_path


def test_conveyor_toml_is_preferred_to_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'project = "from_pyproject"\n')
    write_conveyor_toml(tmp_path, 'project = "from_conveyor_toml"\n')
    assert load_config(tmp_path).project == "from_conveyor_toml"


def test_a_pyproject_without_the_table_is_skipped_on_the_way_up(tmp_path: Path) -> None:
    write_conveyor_toml(tmp_path, 'project = "outer"\n')
    inner = tmp_path / "lib"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "lib"\n')
    assert load_config(inner).project == "outer"


def test_no_config_anywhere_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="conveyor init"):
        load_config(tmp_path)


# -- mistakes: one error naming the key and the file ---------------------------------------


def config_error(folder: Path, body: str, *, toml: str = "pyproject") -> str:
    if toml == "pyproject":
        write_pyproject(folder, body)
    else:
        write_conveyor_toml(folder, body)
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    message = caught.value.message
    assert "\n" not in message
    return message


def test_an_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'colour = "blue"\n')
    assert "tool.conveyor.colour" in message
    assert str(tmp_path / "pyproject.toml") in message
    assert "known keys" in message


def test_a_mistyped_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[tool.conveyor.retrys]\nenabled_in_dev = true\n")
    assert "tool.conveyor.retrys" in message
    assert "did you mean tool.conveyor.retries" in message
    assert str(tmp_path / "pyproject.toml") in message


def test_a_mistyped_nested_key_is_named_in_full(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[retries.default]\nmax_attempt = 4\n", toml="conveyor")
    assert "retries.default.max_attempt" in message
    assert "did you mean retries.default.max_attempts" in message
    assert str(tmp_path / "conveyor.toml") in message


def test_a_value_of_the_wrong_type_names_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'max_duration = "five minutes"\n')
    assert "tool.conveyor.max_duration" in message
    assert "five minutes" in message
    assert str(tmp_path / "pyproject.toml") in message


def test_a_wrong_type_deep_in_a_table_names_the_full_key(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, '[retries.default]\nrandomize = "sometimes"\n', toml="conveyor"
    )
    assert "retries.default.randomize" in message
    assert str(tmp_path / "conveyor.toml") in message


def test_a_table_where_a_value_belongs_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[tool.conveyor.project]\nname = "x"\n')
    assert "tool.conveyor.project" in message


def test_an_unknown_machine_lists_the_presets(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'machine = "huge-9x"\n')
    assert "tool.conveyor.machine" in message
    assert "huge-9x" in message
    assert "small-1x" in message and "large-2x" in message
    assert str(tmp_path / "pyproject.toml") in message


def test_an_out_of_range_value_names_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[retries.default]\nmax_attempts = 0\n", toml="conveyor")
    assert "retries.default.max_attempts" in message


def test_a_dir_outside_the_project_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, 'dirs = ["../elsewhere"]\n')
    assert "tool.conveyor.dirs" in message


def test_bad_toml_in_pyproject_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.conveyor]\nproject = "unterminated\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(tmp_path / "pyproject.toml") in caught.value.message
    assert "invalid TOML" in caught.value.message


def test_bad_toml_in_conveyor_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("project = = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(tmp_path / "conveyor.toml") in caught.value.message
    assert "invalid TOML" in caught.value.message


def test_the_example_project_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello-world"
    config = load_config(example)
    assert config.project == "proj_hello"
    assert config.dirs == ["tasks"]
    assert config.max_duration == 300
    assert config.source == example / "pyproject.toml"
