"""How the MCP tools reach Conveyor: which server, with which credential, for which environment.

Two kinds of credential, as everywhere in Conveyor:

- an environment key (cv_dev_..., cv_prod_...): CONVEYOR_SECRET_KEY, or the dev server's key in
  the nearest `.conveyor/dev.json` (so `conveyor mcp` in a project where `conveyor dev` runs
  needs no setup). It opens the run, task, queue and token routes of its one environment.
- a personal access token (cv_pat_...): CONVEYOR_ACCESS_TOKEN, or the one `conveyor login`
  stored for the server. It opens the account routes, and through them any environment's key.

A tool asks for an environment by name (dev, staging, prod, preview-<branch>); `AsyncClient`s
are made on first use and kept. Every call goes through the Client, never the engine. Nothing
here prints: stdout belongs to the MCP protocol.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from conveyor.client import AsyncClient
from conveyor.client.credentials import TOKEN_ENV, TOKEN_PREFIX, Logins
from conveyor.client.settings import (
    API_URL_ENV,
    DEFAULT_API_URL,
    SECRET_KEY_ENV,
    find_dev_file,
    resolve_settings,
)
from conveyor.config import find_config_file, load_config
from conveyor.errors import AuthenticationError, ConfigError, ConveyorError

ENVIRONMENT_PATTERN = r"^(dev|staging|prod|preview-[a-z0-9][a-z0-9-]*)$"
_KIND_OF_PREFIX = {
    "cv_dev_": "dev",
    "cv_stg_": "staging",
    "cv_prod_": "prod",
    "cv_prev_": "preview",
}


class AccessError(ConveyorError):
    """The MCP server has no way to reach what the tool asked for;
    the message says how to get one."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The flags of `conveyor mcp`."""

    api_url: str | None = None
    project_ref: str | None = None
    dev_only: bool = False
    readonly: bool = False


def key_kind(key: str) -> str | None:
    """dev, staging, prod or preview for an environment key, from its prefix."""
    return next((kind for prefix, kind in _KIND_OF_PREFIX.items() if key.startswith(prefix)), None)


def _clean(url: str) -> str:
    return url.strip().rstrip("/")


class Access:
    """The clients the tools use, made lazily and closed together by `aclose`."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self._clients: dict[tuple[str, str], AsyncClient] = {}
        self._keys: dict[tuple[str, str, str], str] = {}
        self._labels: dict[int, str] = {}

    # -- what there is --------------------------------------------------------------------

    def direct_key(self) -> tuple[str, str] | None:
        """(api_url, key) of the environment key this server was started with, if any."""
        try:
            url, key = resolve_settings(self.options.api_url, None)
        except (AuthenticationError, ConfigError):
            return None
        if key.startswith(TOKEN_PREFIX):  # a token put in CONVEYOR_SECRET_KEY is still a token
            return None
        return url, key

    def account_token(self) -> tuple[str, str] | None:
        """(api_url, token) of a personal access token, if any: the environment's,
        else `conveyor login`'s."""
        try:
            logins = Logins.load()
        except ConfigError:
            logins = Logins()
        url = _clean(
            self.options.api_url or os.environ.get(API_URL_ENV) or logins.api_url or DEFAULT_API_URL
        )
        token = os.environ.get(TOKEN_ENV) or logins.tokens.get(url)
        if not token and os.environ.get(SECRET_KEY_ENV, "").startswith(TOKEN_PREFIX):
            token = os.environ[SECRET_KEY_ENV]
        return (url, token.strip()) if token else None

    def local_project(self) -> str | None:
        """The `project` of the Conveyor config in the current folder or above, if there is one."""
        try:
            return load_config(Path.cwd()).project if find_config_file(Path.cwd()) else None
        except ConfigError:
            return None

    @staticmethod
    def dev_file() -> Path | None:
        return find_dev_file()

    # -- clients --------------------------------------------------------------------------

    def _client(self, url: str, key: str, label: str = "") -> AsyncClient:
        client = self._clients.get((url, key))
        if client is None:
            client = self._clients[(url, key)] = AsyncClient(api_url=url, secret_key=key)
            self._labels[id(client)] = label
        return client

    def label(self, client: AsyncClient) -> str:
        """The environment a client acts in, as tools report it (dev, prod, ...)."""
        return self._labels.get(id(client), "") or "dev"

    def account(self) -> AsyncClient:
        """A client with the personal access token; AccessError saying how to get one."""
        found = self.account_token()
        if found is None:
            url = _clean(self.options.api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL)
            raise AccessError(
                f"this needs a personal access token for {url}, and none is set: ask the user to "
                f"run `conveyor login --api-url {url}` or to set {TOKEN_ENV}=cv_pat_... for "
                "`conveyor mcp`. (`conveyor dev` has no accounts; its tools need no token: call "
                "them without a project_ref.)"
            )
        return self._client(*found)

    def check_environment(self, environment: str | None) -> None:
        if environment is not None and not re.fullmatch(ENVIRONMENT_PATTERN, environment):
            raise AccessError(
                f"unknown environment {environment!r}: use dev, staging, prod or preview-<branch>"
            )
        if self.options.dev_only and environment not in (None, "dev"):
            raise AccessError(
                f"this MCP server runs with --dev-only: only the dev environment is reachable, "
                f"not {environment!r}"
            )

    async def environment(
        self, environment: str | None = None, project_ref: str | None = None
    ) -> AsyncClient:
        """A client for one environment. Without arguments: the environment key this server was
        started with (the project's dev server), else dev of the project through the token."""
        self.check_environment(environment)
        ref = self._project(project_ref)
        direct = self.direct_key()
        if direct is not None and project_ref is None:
            kind = key_kind(direct[1])
            if (
                environment is None
                or kind == environment
                or (kind is None and environment == "dev")
            ):
                if self.options.dev_only and kind not in (None, "dev"):
                    raise AccessError(
                        f"this MCP server runs with --dev-only, but its key is a {kind} key; "
                        "start it with a dev key or without --dev-only"
                    )
                return self._client(*direct, kind or "dev")
        if self.account_token() is None:
            if direct is not None:
                raise AccessError(
                    f"this server's key is a {key_kind(direct[1]) or 'dev'} key; reaching "
                    f"{environment or 'dev'} of another project or environment needs a personal "
                    f"access token (`conveyor login`, or {TOKEN_ENV}). Call the tool without "
                    "environment and project_ref to use the key's own."
                )
            raise AccessError(
                "no Conveyor server to talk to: start `conveyor dev` in the project (and run "
                f"`conveyor mcp` from that folder), or set {API_URL_ENV} with {SECRET_KEY_ENV} (an "
                f"environment key) or {TOKEN_ENV} (a personal access token from `conveyor login`)."
            )
        account = self.account()
        ref = ref or self.local_project()
        if not ref:
            raise AccessError(
                "which project? pass project_ref (list_projects shows them), or run `conveyor mcp` "
                "with --project-ref, or inside a project folder"
            )
        name = environment or "dev"
        cache_key = (account.api_url, ref, name)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = (await account.projects.key(ref, name)).secret_key
        return self._client(account.api_url, key, name)

    async def deploy_environment(
        self, kind: str, branch: str | None = None, project_ref: str | None = None
    ) -> AsyncClient:
        """A client for the environment a deploy goes to: staging, prod, or the preview of `branch`
        (which the server makes if the project has none yet). AccessError when there is no key."""
        if kind != "preview":
            return await self.environment(kind, project_ref)
        ref = self._project(project_ref)
        direct = self.direct_key()
        if direct is not None and project_ref is None and key_kind(direct[1]) == "preview":
            # the server refuses it if it is another branch's
            return self._client(*direct, "preview")
        if self.account_token() is None:
            raise AccessError(
                f"no key for the preview of branch {branch!r}: start `conveyor mcp` with that "
                f"environment's key ({SECRET_KEY_ENV}=cv_prev_...) or with a personal access token "
                f"(`conveyor login`, or {TOKEN_ENV})"
            )
        ref = ref or self.local_project()
        if not ref:
            raise AccessError(
                "which project? pass project_ref (list_projects shows them), or run `conveyor mcp` "
                "with --project-ref, or inside a project folder"
            )
        assert branch is not None
        made = await self.account().projects.preview_environment(ref, branch)
        return await self.environment(made.slug, project_ref)

    def _project(self, project_ref: str | None) -> str | None:
        """The project a tool names, else the one the server is pinned to; refuses another."""
        pinned = self.options.project_ref
        if pinned and project_ref and project_ref != pinned:
            raise AccessError(
                f"this MCP server is pinned to project {pinned!r} (--project-ref); "
                f"it cannot act on {project_ref!r}"
            )
        return project_ref or pinned

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
