"""Where the client finds the server and its key.

Each setting is looked up in order: the argument, the environment (CONVEYOR_API_URL,
CONVEYOR_SECRET_KEY), then the nearest `.conveyor/dev.json` above the current directory
(which `conveyor dev` writes), then a default (only the URL has one). Reading settings has
no side effects: nothing here writes files or changes the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conveyor.errors import AuthenticationError, ConfigError

DEFAULT_API_URL = "http://127.0.0.1:3030"
API_URL_ENV = "CONVEYOR_API_URL"
SECRET_KEY_ENV = "CONVEYOR_SECRET_KEY"
DEV_FILE = Path(".conveyor") / "dev.json"


def find_dev_file(start: Path | None = None) -> Path | None:
    """The nearest `.conveyor/dev.json` in `start` (default: the current directory) or above."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEV_FILE
        if candidate.is_file():
            return candidate
    return None


def read_dev_file(path: Path) -> dict[str, Any]:
    """The settings `conveyor dev` wrote; ConfigError naming the file if it is not readable JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path} is not readable JSON ({exc}); delete it and restart `conveyor dev`"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a JSON object with api_url and secret_key; restart `conveyor dev`"
        )
    return data


def _clean_url(url: str) -> str:
    return url.strip().rstrip("/")


def _checked_url(url: str) -> str:
    """`url` when it is an http(s) URL with a host; ConfigError saying what is wrong otherwise."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # reading the port checks it
    except ValueError as exc:
        raise ConfigError(
            f"the API URL {url!r} is not a URL ({exc}); write it like http://127.0.0.1:3030"
        ) from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"the API URL {url!r} is not an http:// or https:// URL with a host; "
            "write it like http://127.0.0.1:3030"
        )
    return url


def resolve_settings(api_url: str | None = None, secret_key: str | None = None) -> tuple[str, str]:
    """`(api_url, secret_key)` from the arguments, the environment or `.conveyor/dev.json`.

    Raises AuthenticationError when no key is found anywhere."""
    url = api_url or os.environ.get(API_URL_ENV) or None
    key = secret_key or os.environ.get(SECRET_KEY_ENV) or None
    if url is None or key is None:
        dev_file = find_dev_file()
        dev = read_dev_file(dev_file) if dev_file is not None else {}
        dev_url = dev.get("api_url") if isinstance(dev.get("api_url"), str) else None
        dev_key = dev.get("secret_key") if isinstance(dev.get("secret_key"), str) else None
        # The dev key belongs to the dev server: never send it to a URL configured elsewhere.
        if (
            key is None
            and dev_key
            and (url is None or (dev_url and _clean_url(url) == _clean_url(dev_url)))
        ):
            key = dev_key
        if url is None:
            url = dev_url
    url = _checked_url(_clean_url(url or DEFAULT_API_URL))
    if not key:
        where = (
            f"the dev server's key in {dev_file} is only sent to its own URL ({dev_url}), not to "
            f"{url}; "
            if dev_file is not None and dev_url and _clean_url(dev_url) != url
            else ""
        )
        raise AuthenticationError(
            f"no Conveyor secret key for {url}: {where}set {SECRET_KEY_ENV} or pass the key "
            "(--secret-key on the command line, secret_key= in Python), or run inside a project "
            "where `conveyor dev` is running"
        )
    return url, key.strip()
