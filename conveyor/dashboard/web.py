"""How dashboard routes answer: Jinja2 templates with the dashboard's filters, full pages and
redirects that carry the session cookie, and the route class that turns problems into pages.

    DashboardRoute   wraps every dashboard route: LoginRequired -> /login, EnvironmentRequired
                     -> /environments, Refused and ConveyorError -> an error page with their
                     status (never the API's JSON), then writes the session cookie if it changed

Rendering only: nothing here calls the engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from conveyor.cron import local
from conveyor.dashboard.access import (
    DashboardProblem,
    EnvironmentRequired,
    LoginRequired,
    Viewer,
    access_of,
)
from conveyor.dashboard.session import COOKIE
from conveyor.errors import ConveyorError
from conveyor.models import FAILURE_STATUSES, RunStatus
from conveyor.version import __version__

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ACTIVE_STATUSES = ("PENDING_VERSION", "DELAYED", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING")
_STATUS_CLASS = {
    RunStatus.COMPLETED: "ok",
    RunStatus.CANCELED: "muted",
    RunStatus.EXECUTING: "running",
    RunStatus.DEQUEUED: "running",
    RunStatus.WAITING: "waiting",
    RunStatus.QUEUED: "queued",
    RunStatus.DELAYED: "queued",
    RunStatus.PENDING_VERSION: "queued",
}


def status_class(status: str) -> str:
    """The colour family of a run, attempt, span or token status."""
    try:
        run_status = RunStatus(status)
    except ValueError:
        return {
            "ok": "ok",
            "error": "error",
            "canceled": "muted",
            "open": "running",
            "PENDING": "waiting",
            "TIMED_OUT": "error",
            "INTERRUPTED": "muted",
        }.get(status, "muted")
    return "error" if run_status in FAILURE_STATUSES else _STATUS_CLASS.get(run_status, "muted")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def ago(moment: datetime | float | None, now: datetime | None = None) -> str:
    """`12s ago`, `3h ago`, `in 5m`: what app.js keeps up to date in the browser."""
    if moment is None:
        return "–"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, tz=UTC)
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    future, delta = delta < 0, abs(delta)
    if delta < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if delta >= size:
            text = f"{int(delta // size)}{unit}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def iso(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, tz=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock(moment: datetime | float | None) -> str:
    """An absolute UTC time, to the millisecond."""
    if moment is None:
        return "–"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, tz=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def zoned(moment: datetime | None, timezone: str = "UTC") -> str:
    """A time on the wall clock of an IANA time zone, to the second: `2027-01-16 04:00:00 CET`
    (schedules fire on whole seconds, in their own zone)."""
    if moment is None:
        return "–"
    shown = local(moment.timestamp(), timezone)
    return shown.strftime("%Y-%m-%d %H:%M:%S ") + (shown.tzname() or timezone)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


MAX_SHOWN = 32 * 1024  # characters of one value a page shows; the rest is a download


def clipped(value: Any) -> tuple[str, str | None]:
    """`value` as pretty JSON, cut to MAX_SHOWN characters; with the full size ("10.0 MB") when
    cut."""
    text = pretty(value)
    if len(text) <= MAX_SHOWN:
        return text, None
    size = len(text.encode())
    return text[:MAX_SHOWN] + "\n…", (
        f"{size / 1024**2:.1f} MB" if size >= 1024**2 else f"{size // 1024} KB"
    )


def compact_json(value: Any) -> str:
    """JSON on one line, as plain text: the template escapes it like any other value, so a `"` in
    a tag or an error message cannot leave an attribute. (Jinja's own `tojson` returns markup
    that keeps `"` as it is, safe in a `<script>` but not in `title="..."`.)"""
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def run_seconds(run: Any) -> float | None:
    """How long a run has been running: from its start to its end, or to now."""
    if run.started_at is None:
        return None
    end = run.completed_at or datetime.now(UTC)
    return max((end - run.started_at).total_seconds(), 0.0)


def _query(base: dict[str, Any], **changes: Any) -> str:
    params = {**base, **changes}
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


templates = Environment(
    loader=PackageLoader("conveyor.dashboard", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    ago=ago,
    iso=iso,
    clock=clock,
    zoned=zoned,
    duration=format_duration,
    pretty=pretty,
    clipped=clipped,
    status_class=status_class,
    run_seconds=run_seconds,
    tojson=compact_json,
    urlquote=lambda s: quote(str(s), safe=""),
)
templates.globals.update(
    version=__version__, query=_query, RunStatus=RunStatus, ACTIVE_STATUSES=ACTIVE_STATUSES
)


def render(template: str, **context: Any) -> str:
    return templates.get_template(template).render(**context)


def page(
    request: Request, viewer: Viewer | None, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A full page in the layout; it shows (and clears) the session's flash message."""
    flash = None
    if viewer is not None and viewer.session.flash:
        flash = (viewer.session.flash, viewer.session.flash_kind)
        viewer.session.flash = None
        access_of(request).changed(request)
    html = render(
        template,
        request=request,
        viewer=viewer,
        csrf=viewer.session.csrf if viewer else "",
        flash=flash,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def redirect(
    request: Request, url: str, flash: str | None = None, kind: str = "info"
) -> RedirectResponse:
    """Go to `url` after a form (303: the browser GETs it), with a message for the next page."""
    if flash is not None:
        session = access_of(request).session(request)
        session.flash, session.flash_kind = flash, kind
        access_of(request).changed(request)
    return RedirectResponse(url, status_code=303)


def wants_page(request: Request) -> bool:
    """A browser navigating (rather than htmx or an event stream asking for a part)."""
    return "hx-request" not in request.headers and "text/event-stream" not in request.headers.get(
        "accept", ""
    )


class DashboardRoute(APIRoute):
    """A dashboard route: its problems become pages, and its session cookie is written back."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                if wants_page(request):
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    response = RedirectResponse(
                        f"/login?{urlencode({'next': target})}", status_code=303
                    )
                else:
                    response = Response("log in again", status_code=401)
            except EnvironmentRequired:
                response = RedirectResponse("/environments", status_code=303)
            except (DashboardProblem, ConveyorError) as exc:
                status = exc.status
                message = str(exc) or (exc.__doc__ or "").strip()
                response = HTMLResponse(
                    render(
                        "error.html",
                        request=request,
                        viewer=None,
                        csrf="",
                        flash=None,
                        path=request.url.path,
                        status=status,
                        message=message,
                    ),
                    status_code=status,
                )
            access = access_of(request)
            cookie = access.cookie_value(request)
            if cookie is not None:
                response.set_cookie(
                    COOKIE,
                    cookie,
                    max_age=int(access.settings.session_max_age),
                    httponly=True,
                    samesite="lax",
                    secure=access.settings.secure_cookies,
                    path="/",
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route
