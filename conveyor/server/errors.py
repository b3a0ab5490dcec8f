"""How the API answers when something goes wrong: always `{"error": {"code", "message"}}`.

    ConveyorError            its own .status and .code (404 not_found, 409 conflict,
                             422 payload_invalid, ...; 503 unavailable with Retry-After while the
                             database is unreachable)
    RequestValidationError   422 invalid_request naming the field ("options.priority: ...");
                             a body that is not JSON at all is 400 malformed_json, JSON sent
                             under another Content-Type is 415 unsupported_media_type
    HTTPException            404 not_found (no such route), 405 method_not_allowed, ...
    anything else            500 internal_error, logged with its traceback

Bad input must end in one of the first three; a 500 is a bug in Conveyor.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import ConveyorError, StoreUnavailable, problem_of

log = logging.getLogger("conveyor.server")

_MAX_LISTED = 5
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def field_name(loc: Sequence[Any]) -> str:
    """A validation error's location as a user writes it: `items[3].options.priority`,
    `query parameter limit`. The leading "body" is dropped: the user never typed it."""
    parts = list(loc)
    where = ""
    if parts and parts[0] in ("query", "path", "header", "cookie"):
        where = f"{parts.pop(0)} parameter "
    elif parts and parts[0] == "body":
        parts.pop(0)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return where + (text or "request body")


def _describe(error: dict[str, Any]) -> str:
    message = problem_of(error)
    if message.startswith("unknown field"):
        message += " against the API reference (/docs)"
    return f"{field_name(error.get('loc', ()))}: {message}"


async def _conveyor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, StoreUnavailable) else None
    return error_response(exc.status, exc.code, exc.message, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            return error_response(
                400,
                "malformed_json",
                f"the request body is not valid JSON{': ' + str(reason) if reason else ''}",
            )
        if tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes):
            # FastAPI hands over the raw text when the Content-Type is not JSON
            # (curl -d sends a form)
            return _not_json_body(error["input"])
    messages = [_describe(e) for e in errors[:_MAX_LISTED]]
    more = len(errors) - _MAX_LISTED
    if more > 0:
        messages.append(f"and {more} more")
    return error_response(422, "invalid_request", "; ".join(messages) or "the request is invalid")


def _not_json_body(raw: bytes) -> JSONResponse:
    try:
        json.loads(raw)
    except ValueError as exc:
        return error_response(400, "malformed_json", f"the request body is not valid JSON: {exc}")
    return error_response(
        415,
        "unsupported_media_type",
        "the request body is JSON but was not sent as such; set `Content-Type: application/json`",
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no API route {request.method} {request.url.path}; see /docs for the routes"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # the router names the methods of the first route that matched the path; a path can have
        # several
        allow = _methods_of(request) or headers.get("Allow", "")
        headers["Allow"] = allow
        message = f"{request.method} is not allowed on {request.url.path}" + (
            f"; use {allow}" if allow else ""
        )
    return error_response(exc.status_code, code, message, headers=headers)


def _methods_of(request: Request) -> str:
    """The methods the request's path takes, from the OpenAPI document, as `Allow` lists them.
    Where several templates match (`/queues/{name}` also matches `/queues/q/pause`, queue names
    having slashes), the most specific one (the most literal characters) is the path's."""
    templates = getattr(request.app.state, "allow_templates", None)
    if templates is None:
        templates = []
        for path, item in request.app.openapi().get("paths", {}).items():
            regex = re.compile(
                "^"
                + "".join(
                    ".+" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"({[^}]*})", path)
                )
                + "$"
            )
            literal = len(re.sub(r"{[^}]*}", "", path))
            templates.append((regex, literal, ", ".join(sorted(method.upper() for method in item))))
        request.app.state.allow_templates = templates
    matching = [
        (literal, methods) for regex, literal, methods in templates if regex.match(request.url.path)
    ]
    return max(matching)[1] if matching else ""


class InternalErrorMiddleware:
    """Turns an unexpected exception into a logged 500 JSON answer.

    A plain ASGI middleware rather than an `Exception` handler: Starlette re-raises after
    calling such a handler, which would log every crash twice and break test clients."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # the answer is half sent; all we can do is drop the connection
                raise
            body = json.dumps(
                {
                    "error": {
                        "code": "internal_error",
                        "message": "Conveyor hit an internal error; the server log has the details",
                    }
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(InternalErrorMiddleware)
