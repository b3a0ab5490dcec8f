"""How the client finds its server and key: arguments, then CONVEYOR_* variables, then the
nearest `.conveyor/dev.json`, then the default URL; no key anywhere is one clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conveyor.client.settings import DEFAULT_API_URL, find_dev_file, resolve_settings
from conveyor.errors import AuthenticationError, ConfigError


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("CONVEYOR_API_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_dev(folder: Path, **values: object) -> Path:
    (folder / ".conveyor").mkdir(parents=True, exist_ok=True)
    path = folder / ".conveyor" / "dev.json"
    path.write_text(json.dumps(values))
    return path


def test_arguments_win_over_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVEYOR_API_URL", "http://env:1")
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", "cv_env")
    write_dev(tmp_path, api_url="http://dev:2", secret_key="cv_dev")
    assert resolve_settings("http://arg:3/", "cv_arg") == ("http://arg:3", "cv_arg")


def test_environment_variables_win_over_the_dev_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVEYOR_API_URL", "http://env:1")
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", "cv_env")
    write_dev(tmp_path, api_url="http://dev:2", secret_key="cv_dev")
    assert resolve_settings() == ("http://env:1", "cv_env")


def test_the_nearest_dev_file_above_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_dev(tmp_path, api_url="http://outer:1", secret_key="cv_outer")
    inner = tmp_path / "a"
    write_dev(inner, api_url="http://inner:2", secret_key="cv_inner")
    deep = inner / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_dev_file() == (inner / ".conveyor" / "dev.json").resolve()
    assert resolve_settings() == ("http://inner:2", "cv_inner")


def test_the_default_url_with_a_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", "cv_env")
    assert resolve_settings() == (DEFAULT_API_URL, "cv_env")


def test_the_dev_key_is_never_sent_to_another_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_dev(tmp_path, api_url="http://127.0.0.1:3030", secret_key="cv_dev_local")
    monkeypatch.setenv("CONVEYOR_API_URL", "https://conveyor.example.com")
    with pytest.raises(AuthenticationError):
        resolve_settings()
    monkeypatch.setenv("CONVEYOR_API_URL", "http://127.0.0.1:3030/")
    assert resolve_settings() == ("http://127.0.0.1:3030", "cv_dev_local")


def test_no_key_anywhere_says_what_to_do() -> None:
    with pytest.raises(AuthenticationError) as info:
        resolve_settings()
    message = str(info.value)
    assert "CONVEYOR_SECRET_KEY" in message
    assert "conveyor dev" in message


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_broken_dev_file_is_an_error_naming_it(tmp_path: Path, content: str) -> None:
    path = write_dev(tmp_path)
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"dev\.json"):
        resolve_settings()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "is not a URL (Invalid IPv6 URL)"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("localhost:3030", "not an http:// or https:// URL"),
        ("ftp://example.com", "not an http:// or https:// URL"),
    ],
)
def test_a_malformed_api_url_is_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        resolve_settings(url, "cv_dev_x")
