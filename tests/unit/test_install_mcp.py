"""`conveyor install-mcp` writes each client's config at its real path and in its own shape,
keeps every other server and setting, changes nothing the second time, backs up what it
changes, never puts a secret in a project file, and `--uninstall` removes only its own entry.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import main
from conveyor.mcp.install.clients import CLIENTS, Place
from conveyor.mcp.install.configfile import strip_jsonc

SCOPES = [(name, scope) for name, client in sorted(CLIENTS.items()) for scope in client.paths]

# where each client's file must land, relative to the fake HOME ("~") or the project (".") on Linux
EXPECTED_PATHS = {
    ("claude-code", "user"): "~/.claude.json",
    ("claude-code", "project"): "./.mcp.json",
    ("claude-desktop", "user"): "~/.config/Claude/claude_desktop_config.json",
    ("cursor", "user"): "~/.cursor/mcp.json",
    ("cursor", "project"): "./.cursor/mcp.json",
    ("windsurf", "user"): "~/.codeium/windsurf/mcp_config.json",
    ("vscode", "user"): "~/.config/Code/User/mcp.json",
    ("vscode", "project"): "./.vscode/mcp.json",
    ("zed", "user"): "~/.config/zed/settings.json",
    ("zed", "project"): "./.zed/settings.json",
    (
        "cline",
        "user",
    ): "~/.config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
    ("codex", "user"): "~/.codex/config.toml",
    ("codex", "project"): "./.codex/config.toml",
    ("gemini-cli", "user"): "~/.gemini/settings.json",
    ("gemini-cli", "project"): "./.gemini/settings.json",
    ("opencode", "user"): "~/.config/opencode/opencode.json",
    ("opencode", "project"): "./opencode.json",
}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "XDG_CONFIG_HOME",
        "APPDATA",
        "CODEX_HOME",
        "CLAUDE_CONFIG_DIR",
        "CLINE_MCP_SETTINGS_PATH",
        "CONVEYOR_API_URL",
        "CONVEYOR_SECRET_KEY",
        "CONVEYOR_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)
    return home


def install(*args: str) -> Result:
    result = CliRunner().invoke(main, ["install-mcp", *args], catch_exceptions=False)
    return result


def where(home: Path, name: str, scope: str) -> Path:
    expected = EXPECTED_PATHS[(name, scope)]
    return home / expected[2:] if expected.startswith("~") else Path.cwd() / expected[2:]


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(strip_jsonc(text))


def entry_of(name: str, data: dict[str, Any]) -> Any:
    node: Any = data
    for key in CLIENTS[name].keys:
        node = node[key]
    return node["conveyor"]


def command_of(name: str, entry: dict[str, Any]) -> list[str]:
    return entry["command"] if name == "opencode" else [entry["command"], *entry["args"]]


def test_every_client_and_scope_is_covered() -> None:
    assert set(EXPECTED_PATHS) == set(SCOPES)
    assert set(CLIENTS) == {
        "claude-code",
        "claude-desktop",
        "cursor",
        "windsurf",
        "vscode",
        "zed",
        "cline",
        "codex",
        "gemini-cli",
        "opencode",
    }


@pytest.mark.parametrize(("name", "scope"), SCOPES)
def test_writes_the_clients_own_file_in_its_own_shape(home: Path, name: str, scope: str) -> None:
    result = install(
        "--client",
        name,
        "--scope",
        scope,
        "--readonly",
        "--project-ref",
        "proj_shop",
        "--command",
        "conveyor",
    )
    assert result.exit_code == 0, result.output
    path = where(home, name, scope)
    assert str(path) in result.output
    entry = entry_of(name, load(path))
    assert command_of(name, entry) == [
        "conveyor",
        "mcp",
        "--readonly",
        "--project-ref",
        "proj_shop",
    ]
    if name == "opencode":
        assert entry["type"] == "local" and entry["enabled"] is True
    elif name == "codex":
        assert entry["startup_timeout_sec"] == 30
    elif name in ("claude-code", "vscode"):
        assert entry["type"] == "stdio"


@pytest.mark.parametrize(("name", "scope"), SCOPES)
def test_keeps_other_servers_is_idempotent_and_uninstalls_only_its_own(
    home: Path, name: str, scope: str
) -> None:
    path = where(home, name, scope)
    path.parent.mkdir(parents=True, exist_ok=True)
    client = CLIENTS[name]
    if client.format == "toml":
        path.write_text(
            '# my settings\nmodel = "o3"\n\n[mcp_servers.other]\ncommand = "other"\nargs = []\n'
        )
    else:
        other: dict[str, Any] = {"theme": "dark"}
        node = other
        for key in client.keys:
            node = node.setdefault(key, {})
        node["other"] = {"command": "other", "args": []}
        path.write_text(
            "// mine\n" + json.dumps(other, indent=2).replace('"dark"', '"dark", // comment')
        )

    assert install("--client", name, "--scope", scope).exit_code == 0
    data = load(path)
    assert entry_of(name, data)["command" if name != "opencode" else "type"]
    node = data
    for key in client.keys:
        node = node[key]
    assert node["other"]["command"] == "other"
    assert data.get("theme", data.get("model")) in ("dark", "o3")
    backups = list(path.parent.glob(path.name + ".bak-*"))
    assert len(backups) == 1  # the original, before the first change

    written = path.read_bytes()
    again = install("--client", name, "--scope", scope)
    assert again.exit_code == 0 and "already set up" in again.output
    assert path.read_bytes() == written
    assert len(list(path.parent.glob(path.name + ".bak-*"))) == 1

    removed = install("--client", name, "--scope", scope, "--uninstall")
    assert removed.exit_code == 0, removed.output
    data = load(path)
    node = data
    for key in client.keys:
        node = node[key]
    assert "conveyor" not in node and node["other"]["command"] == "other"
    assert "nothing to remove" in install("--client", name, "--scope", scope, "--uninstall").output


def test_codex_keeps_the_files_comments(home: Path) -> None:
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('# my settings\nmodel = "o3"\n')
    install("--client", "codex")
    assert path.read_text().startswith('# my settings\nmodel = "o3"\n')


def test_dry_run_changes_nothing(home: Path) -> None:
    result = install("--client", "cursor", "--client", "codex", "--dry-run")
    assert result.exit_code == 0
    assert "would create" in result.output and "[mcp_servers.conveyor]" in result.output
    assert not (home / ".cursor").exists() and not (home / ".codex").exists()


def test_never_writes_a_secret_into_a_project_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", "cv_dev_0123456789abcdef")
    monkeypatch.setenv("CONVEYOR_ACCESS_TOKEN", "cv_pat_0123456789abcdef")
    assert install("--client", "claude-code", "--scope", "project").exit_code == 0
    assert "cv_" not in Path(".mcp.json").read_text()
    refused = install(
        "--client",
        "cursor",
        "--scope",
        "project",
        "--api-url",
        "https://me:secret@conveyor.example",
    )
    assert refused.exit_code == 2 and "password" in refused.stderr
    refused = install(
        "--client",
        "vscode",
        "--scope",
        "project",
        "--command",
        "env CONVEYOR_SECRET_KEY=cv_prod_0123456789abcdef conveyor",
    )
    assert refused.exit_code == 2 and "key or token" in refused.stderr
    assert not Path(".cursor").exists() and not Path(".vscode").exists()


def test_a_client_without_the_scope_is_one_error_line(home: Path) -> None:
    result = install("--client", "windsurf", "--scope", "project")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: Windsurf has no project scope; use --scope user"
    ]


def test_a_broken_config_file_is_left_alone(home: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text("{not json")
    result = install("--client", "cursor")
    assert result.exit_code == 1 and "not valid JSON" in result.stderr
    assert path.read_text() == "{not json"


@pytest.mark.parametrize(
    ("platform", "name", "expected"),
    [
        (
            "darwin",
            "claude-desktop",
            "Library/Application Support/Claude/claude_desktop_config.json",
        ),
        ("win32", "claude-desktop", "AppData/Roaming/Claude/claude_desktop_config.json"),
        ("darwin", "vscode", "Library/Application Support/Code/User/mcp.json"),
        ("win32", "vscode", "AppData/Roaming/Code/User/mcp.json"),
        (
            "darwin",
            "cline",
            "Library/Application Support/Code/User/globalStorage/saoudrizwan.claude-dev/settings/"
            "cline_mcp_settings.json",
        ),
        ("win32", "zed", "AppData/Roaming/Zed/settings.json"),
        ("darwin", "zed", ".config/zed/settings.json"),
    ],
)
def test_user_paths_follow_the_os(platform: str, name: str, expected: str) -> None:
    place = Place(home=Path("/h"), cwd=Path("/p"), platform=platform, environ={})
    assert CLIENTS[name].path("user", place) == Path("/h") / expected


def test_environment_overrides_are_honoured() -> None:
    place = Place(
        home=Path("/h"),
        cwd=Path("/p"),
        platform="linux",
        environ={"CODEX_HOME": "/c", "CLAUDE_CONFIG_DIR": "/cc", "XDG_CONFIG_HOME": "/x"},
    )
    assert CLIENTS["codex"].path("user", place) == Path("/c/config.toml")
    assert CLIENTS["claude-code"].path("user", place) == Path("/cc/.claude.json")
    assert CLIENTS["opencode"].path("user", place) == Path("/x/opencode/opencode.json")


def test_jsonc_comments_and_trailing_commas_are_tolerated() -> None:
    text = '{\n  // a comment\n  "a": "http://x//y", /* block */\n  "b": [1, 2,],\n}\n'
    assert json.loads(strip_jsonc(text)) == {"a": "http://x//y", "b": [1, 2]}
