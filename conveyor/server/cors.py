"""CORS for the routes a public access token opens, so a browser page may call them: reading runs
(GET) and triggering with a trigger token (POST), as `PUBLIC_ROUTES` of conveyor/server/auth.py
lists them, from the origins the server allows. No other route answers a browser's preflight or
gets `Access-Control-Allow-Origin`: not the dashboard, not the account routes, not the rest of
the API.

    CONVEYOR_CORS_ORIGINS="https://app.example.com,https://*.example.com,http://localhost:*"
    [tool.conveyor.realtime] cors_origins = [...]      (conveyor dev, which also allows
                                                        http://localhost:* and 127.0.0.1)

An origin is `scheme://host[:port]`; `*.` before the host allows its subdomains, `:*` any port,
and `*` alone any origin. Credentials (cookies) are never allowed: a token travels in the
`Authorization` header, so allowing an origin opens nothing the token does not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.config import cors_origin_problem
from conveyor.errors import ConfigError
from conveyor.server.auth import READ_ROUTES, TRIGGER_ROUTES

ENV_VAR = "CONVEYOR_CORS_ORIGINS"
# `conveyor dev`: pages served by a front end's own dev server on this machine
DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
MAX_AGE = 600  # seconds a browser may keep a preflight's answer


def parse_origins(text: str, source: str = ENV_VAR) -> tuple[str, ...]:
    """Origins separated by commas or spaces; ConfigError naming `source` and the origin."""
    return check_origins([part for part in re.split(r"[,\s]+", text) if part], source)


def check_origins(origins: Sequence[str], source: str) -> tuple[str, ...]:
    checked = []
    for origin in origins:
        problem = cors_origin_problem(origin)
        if problem:
            raise ConfigError(f"{source}: {problem}")
        checked.append(origin.lower().rstrip("/"))
    return tuple(dict.fromkeys(checked))


def origins_from_env() -> tuple[str, ...]:
    return parse_origins(os.environ.get(ENV_VAR, ""))


def _origin_regex(origins: Sequence[str]) -> str | None:
    patterns = [
        re.escape(origin).replace(r"\*\.", r"([a-z0-9-]+\.)+").replace(r":\*", r":[0-9]{1,5}")
        for origin in origins
        if "*" in origin and origin != "*"
    ]
    return "|".join(f"(?:{pattern})" for pattern in patterns) or None


def _path_regex(paths: Sequence[tuple[str, str]]) -> re.Pattern[str]:
    templates = [re.sub(r"\\{[^}]*\\}", "[^/]+", re.escape(path)) for _, path in paths]
    return re.compile("^(?:" + "|".join(templates) + ")$")


class PublicCors:
    """Answers preflights and adds CORS headers on the public routes only (see the module
    docstring); every other request goes by untouched. Starlette's CORSMiddleware does the
    answering, one for the reading routes (GET) and one for the trigger route (POST)."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        reading = _cors(app, origins, "GET", ["Authorization", "Last-Event-ID", "Cache-Control"])
        # a page instrumented with OpenTelemetry sends its trace context (docs/opentelemetry.md)
        triggering = _cors(
            app, origins, "POST", ["Authorization", "Content-Type", "traceparent", "tracestate"]
        )
        self.routes: list[tuple[re.Pattern[str], ASGIApp]] = [
            (_path_regex(READ_ROUTES), reading),
            (_path_regex(TRIGGER_ROUTES), triggering),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for paths, cors in self.routes:
                if paths.match(scope["path"]):
                    await cors(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _cors(app: ASGIApp, origins: Sequence[str], method: str, headers: list[str]) -> ASGIApp:
    return CORSMiddleware(
        app,
        allow_origins=[origin for origin in origins if "*" not in origin or origin == "*"],
        allow_origin_regex=_origin_regex(origins),
        allow_methods=[method],
        allow_headers=headers,
        allow_credentials=False,
        expose_headers=["Retry-After"],
        max_age=MAX_AGE,
    )
