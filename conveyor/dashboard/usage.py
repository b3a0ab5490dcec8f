"""Usage page: the compute seconds the environment used in a period, per task and machine.

GET  /usage                   ?period=24h|7d|30d (30d by default)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from conveyor.dashboard.access import ScopedDep
from conveyor.dashboard.web import DashboardRoute, page
from conveyor.engine import Engine

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PERIODS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


@router.get("/usage", response_class=HTMLResponse, response_model=None)
def usage_page(request: Request, viewer: ScopedDep) -> HTMLResponse:
    engine: Engine = request.app.state.engine
    period = request.query_params.get("period", "30d")
    if period not in PERIODS:
        period = "30d"
    until = engine.clock()
    report = engine.usage.period(viewer.env_id, until - PERIODS[period], until)
    return page(request, viewer, "usage.html", usage=report, period=period, periods=PERIODS)
