"""The AI clients `conveyor install-mcp` configures: where each keeps its MCP servers, for the
current OS and scope, and the shape of one server entry in its file.

    client          user scope (per OS)                                   project scope
    claude-code     ~/.claude.json ($CLAUDE_CONFIG_DIR/.claude.json)      .mcp.json
    claude-desktop  macOS ~/Library/Application Support/Claude/claude_desktop_config.json,
                    Windows %APPDATA%\\Claude\\..., Linux $XDG_CONFIG_HOME/Claude/...
    cursor          ~/.cursor/mcp.json                                    .cursor/mcp.json
    windsurf        ~/.codeium/windsurf/mcp_config.json
    vscode          <VS Code user dir>/mcp.json  (key "servers")          .vscode/mcp.json
    zed             ~/.config/zed/settings.json, Windows %APPDATA%\\Zed   .zed/settings.json
                    (key "context_servers")
    cline           <VS Code user dir>/globalStorage/saoudrizwan.claude-dev/settings/
                    cline_mcp_settings.json
    codex           $CODEX_HOME/config.toml (~/.codex/config.toml)        .codex/config.toml  (TOML)
    gemini-cli      ~/.gemini/settings.json                               .gemini/settings.json
    opencode        ~/.config/opencode/opencode.json  (key "mcp")         opencode.json

The VS Code user dir is ~/Library/Application Support/Code/User on macOS, %APPDATA%\\Code\\User
on Windows and $XDG_CONFIG_HOME/Code/User elsewhere. Pure: paths come from a `Place`, so tests
can ask for any OS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from conveyor.mcp.install.configfile import Format

SERVER_NAME = "conveyor"
Scope = Literal["user", "project"]
# What a Conveyor secret looks like: an environment key or a personal access token.
SECRET = re.compile(r"cv_(dev|stg|prod|prev|pat)_[A-Za-z0-9]{6,}")


@dataclass(frozen=True)
class Place:
    """Where the user is: their home folder, the project folder, the OS and the environment."""

    home: Path
    cwd: Path
    platform: str  # sys.platform: "linux", "darwin", "win32"
    environ: Mapping[str, str]

    def xdg_config(self) -> Path:
        return Path(self.environ.get("XDG_CONFIG_HOME") or self.home / ".config")

    def appdata(self) -> Path:
        return Path(self.environ.get("APPDATA") or self.home / "AppData" / "Roaming")

    def app_config(self, app: str) -> Path:
        """An app's config folder: Application Support on macOS, %APPDATA% on Windows,
        XDG elsewhere."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support" / app
        if self.platform == "win32":
            return self.appdata() / app
        return self.xdg_config() / app

    def vscode_user(self) -> Path:
        return self.app_config("Code") / "User"


def _stdio(command: list[str], typed: bool = False, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "stdio"} if typed else {}
    entry.update({"command": command[0], "args": command[1:], "env": {}})
    entry.update(extra)
    return entry


def _codex(command: list[str]) -> dict[str, Any]:
    return {"command": command[0], "args": command[1:], "startup_timeout_sec": 30}


def _opencode(command: list[str]) -> dict[str, Any]:
    return {"type": "local", "command": command, "enabled": True}


@dataclass(frozen=True)
class McpClient:
    """One AI client: its config file per scope, the keys to the servers table,
    and an entry builder."""

    name: str
    title: str
    paths: dict[Scope, Callable[[Place], Path]]
    keys: tuple[str, ...]
    entry: Callable[[list[str]], dict[str, Any]]
    format: Format = "json"
    restart: str = "restart it"

    def path(self, scope: Scope, place: Place) -> Path:
        return self.paths[scope](place)

    @property
    def default_scope(self) -> Scope:
        return "user" if "user" in self.paths else "project"


def _claude_code_user(place: Place) -> Path:
    folder = place.environ.get("CLAUDE_CONFIG_DIR")
    return Path(folder) / ".claude.json" if folder else place.home / ".claude.json"


def _cline(place: Place) -> Path:
    override = place.environ.get("CLINE_MCP_SETTINGS_PATH")
    if override:
        return Path(override)
    return (
        place.vscode_user()
        / "globalStorage"
        / "saoudrizwan.claude-dev"
        / "settings"
        / "cline_mcp_settings.json"
    )


def _zed_user(place: Place) -> Path:
    if place.platform == "win32":
        return place.appdata() / "Zed" / "settings.json"
    return place.xdg_config() / "zed" / "settings.json"


def _codex_user(place: Place) -> Path:
    home = place.environ.get("CODEX_HOME")
    return (Path(home) if home else place.home / ".codex") / "config.toml"


CLIENTS: dict[str, McpClient] = {
    c.name: c
    for c in (
        McpClient(
            "claude-code",
            "Claude Code",
            {"user": _claude_code_user, "project": lambda p: p.cwd / ".mcp.json"},
            ("mcpServers",),
            lambda cmd: _stdio(cmd, typed=True),
            restart="start a new Claude Code session (project servers need approving once: /mcp)",
        ),
        McpClient(
            "claude-desktop",
            "Claude Desktop",
            {"user": lambda p: p.app_config("Claude") / "claude_desktop_config.json"},
            ("mcpServers",),
            _stdio,
            restart="quit and reopen Claude Desktop",
        ),
        McpClient(
            "cursor",
            "Cursor",
            {
                "user": lambda p: p.home / ".cursor" / "mcp.json",
                "project": lambda p: p.cwd / ".cursor" / "mcp.json",
            },
            ("mcpServers",),
            _stdio,
            restart="enable it under Cursor Settings › MCP",
        ),
        McpClient(
            "windsurf",
            "Windsurf",
            {"user": lambda p: p.home / ".codeium" / "windsurf" / "mcp_config.json"},
            ("mcpServers",),
            _stdio,
            restart="press refresh in Windsurf's MCP panel",
        ),
        McpClient(
            "vscode",
            "VS Code (Copilot)",
            {
                "user": lambda p: p.vscode_user() / "mcp.json",
                "project": lambda p: p.cwd / ".vscode" / "mcp.json",
            },
            ("servers",),
            lambda cmd: _stdio(cmd, typed=True),
            restart="start the server from the MCP view",
        ),
        McpClient(
            "zed",
            "Zed",
            {"user": _zed_user, "project": lambda p: p.cwd / ".zed" / "settings.json"},
            ("context_servers",),
            lambda cmd: _stdio(cmd, source="custom"),
            restart="reopen the agent panel",
        ),
        McpClient(
            "cline",
            "Cline",
            {"user": _cline},
            ("mcpServers",),
            lambda cmd: _stdio(cmd, disabled=False, autoApprove=[]),
            restart="reload the VS Code window",
        ),
        McpClient(
            "codex",
            "Codex",
            {"user": _codex_user, "project": lambda p: p.cwd / ".codex" / "config.toml"},
            ("mcp_servers",),
            _codex,
            format="toml",
            restart="start a new Codex session",
        ),
        McpClient(
            "gemini-cli",
            "Gemini CLI",
            {
                "user": lambda p: p.home / ".gemini" / "settings.json",
                "project": lambda p: p.cwd / ".gemini" / "settings.json",
            },
            ("mcpServers",),
            _stdio,
            restart="start a new Gemini CLI session",
        ),
        McpClient(
            "opencode",
            "opencode",
            {
                "user": lambda p: p.xdg_config() / "opencode" / "opencode.json",
                "project": lambda p: p.cwd / "opencode.json",
            },
            ("mcp",),
            _opencode,
            restart="start a new opencode session",
        ),
    )
}


def server_args(
    *,
    readonly: bool = False,
    dev_only: bool = False,
    project_ref: str | None = None,
    api_url: str | None = None,
    project_dir: PurePath | None = None,
) -> list[str]:
    """The arguments of `conveyor mcp` an installed entry runs it with."""
    args = ["mcp"]
    if readonly:
        args.append("--readonly")
    if dev_only:
        args.append("--dev-only")
    if project_ref:
        args += ["--project-ref", project_ref]
    if api_url:
        args += ["--api-url", api_url]
    if project_dir:
        args += ["--project-dir", str(project_dir)]
    return args


def find_secret(value: Any) -> str | None:
    """A Conveyor secret, or a URL with a password, anywhere in a config entry."""
    if isinstance(value, str):
        if SECRET.search(value):
            return "a Conveyor key or token"
        if re.search(r"://[^/@\s]+:[^/@\s]+@", value):
            return "a URL with a password"
        return None
    if isinstance(value, dict):
        return next((found for v in value.values() if (found := find_secret(v))), None)
    if isinstance(value, list):
        return next((found for v in value if (found := find_secret(v))), None)
    return None
