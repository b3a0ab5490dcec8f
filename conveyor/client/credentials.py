"""Where `conveyor login` keeps personal access tokens, and how account commands (the CLI's and
the MCP server's) find theirs.

    $XDG_CONFIG_HOME/conveyor/config.json   (default ~/.config/conveyor/config.json), mode 0600
    {"api_url": "<the server logged in to last>", "tokens": {"<api url>": "cv_pat_..."}}

A token is only ever sent to the server it was stored for. The account commands (projects,
keys) find theirs in order: CONVEYOR_ACCESS_TOKEN, then the token stored for the API URL, which
comes from --api-url, CONVEYOR_API_URL, or the server logged in to last. Nothing here prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.client.settings import API_URL_ENV, DEFAULT_API_URL
from conveyor.errors import AuthenticationError, ConfigError

TOKEN_ENV = "CONVEYOR_ACCESS_TOKEN"
TOKEN_PREFIX = "cv_pat_"


def config_path() -> Path:
    """The user's Conveyor config file (it may not exist yet)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "conveyor" / "config.json"


def clean_url(url: str) -> str:
    return url.strip().rstrip("/")


@dataclass
class Logins:
    """The tokens `conveyor login` stored, by API URL, and the server logged in to last."""

    api_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Logins:
        path = path or config_path()
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path} is not readable JSON ({exc}); fix or delete it, then `conveyor login` "
                "again"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} must hold a JSON object; fix or delete it, then `conveyor login` again"
            )
        tokens = data.get("tokens")
        tokens = tokens if isinstance(tokens, dict) else {}
        api_url = data.get("api_url") if isinstance(data.get("api_url"), str) else None
        return cls(
            api_url,
            {
                clean_url(k): v
                for k, v in tokens.items()
                if isinstance(k, str) and isinstance(v, str)
            },
        )

    def save(self, path: Path | None = None) -> Path:
        """Write the file readable by its owner alone (0600; its folder 0700 when made here)."""
        path = path or config_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"api_url": self.api_url, "tokens": self.tokens}, handle, indent=2)
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file left over from before
        tmp.replace(path)
        return path

    def remember(self, api_url: str, token: str) -> None:
        self.api_url = clean_url(api_url)
        self.tokens[self.api_url] = token


def login_url(api_url: str | None) -> str:
    """The server `conveyor login` talks to: --api-url, CONVEYOR_API_URL, the last one,
    the default."""
    return clean_url(
        api_url or os.environ.get(API_URL_ENV) or Logins.load().api_url or DEFAULT_API_URL
    )


def account_settings(api_url: str | None) -> tuple[str, str]:
    """(api_url, token) for the account commands; AuthenticationError saying how to log in."""
    logins = Logins.load()
    url = clean_url(api_url or os.environ.get(API_URL_ENV) or logins.api_url or DEFAULT_API_URL)
    token = os.environ.get(TOKEN_ENV) or logins.tokens.get(url)
    if not token:
        raise AuthenticationError(
            f"not logged in to {url}: run `conveyor login --api-url {url}` "
            f"(or set {TOKEN_ENV} to a personal access token)"
        )
    return url, token.strip()
