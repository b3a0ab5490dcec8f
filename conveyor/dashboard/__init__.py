"""The web dashboard: runs, traces, logs, tasks, queues, schedules, waitpoint tokens,
environments, API keys, deployed versions, variables and alerts, server-rendered with live
parts, served at `/` by `conveyor dev` and `conveyor server`.

    access.py      who is looking (dev: this machine; server: login), CSRF on every form
    session.py     the signed session cookie
    web.py         templates, filters, pages and redirects, the route class
    live.py        server-sent events re-rendering a page's live part
    waterfall.py   a trace as waterfall rows (pure)
    runs.py  tasks.py  queues.py  schedules.py  tokens.py  accounts.py  deploys.py  usage.py
    envvars.py  alerts.py
                   the pages, one module per resource
    templates/     Jinja2      static/   CSS, JS, vendored htmx (no build step, no CDN)

The dashboard reads and changes state only through the Engine's parts, with the
viewer's environment; it never runs SQL.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from conveyor.dashboard.access import Access, DashboardSettings
from conveyor.engine import Engine

STATIC = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI, engine: Engine, settings: DashboardSettings) -> None:
    """Serve the dashboard from `app`, an API app from `conveyor.server.create_app(engine)`
    (whose engine, wake-ups and error handling it uses); the platform mounts it."""
    from conveyor.dashboard import (
        accounts,
        alerts,
        deploys,
        envvars,
        queues,
        runs,
        schedules,
        tasks,
        tokens,
        usage,
    )

    app.state.dashboard = Access(engine, settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
    for module in (
        accounts,
        runs,
        tasks,
        queues,
        schedules,
        tokens,
        deploys,
        usage,
        envvars,
        alerts,
    ):
        app.include_router(module.router)


__all__ = ["DashboardSettings", "mount_dashboard"]
