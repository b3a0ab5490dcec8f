"""Alert routes: an environment's alert channels (made, listed, deleted, tested) and their latest
deliveries (docs/alerts.md). Channels, deliveries and sending are the engine's
(conveyor/engine/alerts.py) and the platform's sender's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import ConfigDict, Field

from conveyor.durations import DURATION_PATTERN, MAX_SECONDS
from conveyor.models import (
    AlertChannel,
    AlertChannelList,
    AlertDelivery,
    AlertDeliveryList,
    AlertEvent,
    CreatedAlertChannel,
    WireModel,
)
from conveyor.server.auth import EngineDep, EnvironmentDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import API_RESPONSES

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/alerts", tags=["alerts"], responses=API_RESPONSES
)

AlertId = Annotated[str, Path(description="The alert channel's id (alert_...)", max_length=200)]
Duration = Annotated[
    Annotated[float, Field(ge=0, le=MAX_SECONDS)]
    | Annotated[str, Field(pattern=DURATION_PATTERN)]
    | None,
    Field(description='Seconds, or a duration such as "90s", "5m"'),
]


class CreateAlertBody(WireModel):
    """`POST /api/v1/alerts`: one event sent to one of a webhook, a Slack incoming webhook or an
    email address."""

    model_config = ConfigDict(extra="forbid")

    event: AlertEvent
    webhook: str | None = Field(
        None, max_length=2000, description="A URL to POST the signed JSON body to"
    )
    slack: str | None = Field(None, max_length=2000, description="A Slack incoming webhook URL")
    email: str | None = Field(None, max_length=254, description="An address to email")
    task: str | None = Field(
        None, min_length=1, max_length=200, description="run.failed: only this task"
    )
    queue: str | None = Field(
        None, min_length=1, max_length=200, description="queue.backlog: only this queue"
    )
    backlog: int | None = Field(
        None, ge=0, le=10**9, description="queue.backlog: more than this many runs waiting"
    )
    backlog_for: Duration = None
    window: Duration = None


@router.get("", response_model=AlertChannelList, summary="List alert channels")
def list_alerts(env: EnvironmentDep, engine: EngineDep) -> AlertChannelList:
    """The environment's alert channels, oldest first (a webhook's secret as a hint only)."""
    return engine.alerts.list(env.id)


@router.post(
    "",
    response_model=CreatedAlertChannel,
    status_code=status.HTTP_201_CREATED,
    summary="Create an alert channel",
)
def create_alert(
    body: CreateAlertBody, env: EnvironmentDep, engine: EngineDep
) -> CreatedAlertChannel:
    """Send `event` to a webhook, Slack or an email address. A webhook's signing secret is in
    this answer only: keep it to check the `Conveyor-Signature` header
    (`conveyor.webhooks.verify`)."""
    return engine.alerts.create(
        env.id,
        event=body.event,
        webhook=body.webhook,
        slack=body.slack,
        email=body.email,
        task=body.task,
        queue=body.queue,
        backlog=body.backlog,
        backlog_for=body.backlog_for,
        window=body.window,
    )


@router.get("/deliveries", response_model=AlertDeliveryList, summary="List alert deliveries")
def list_deliveries(
    env: EnvironmentDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Deliveries to return")] = 50,
) -> AlertDeliveryList:
    """The environment's latest alert deliveries, newest first: what was sent, is being gathered
    or tried again, or failed."""
    return engine.alerts.deliveries(env.id, limit)


@router.get("/{alert_id}", response_model=AlertChannel, summary="Show an alert channel")
def get_alert(alert_id: AlertId, env: EnvironmentDep, engine: EngineDep) -> AlertChannel:
    return engine.alerts.get(env.id, alert_id)


@router.delete("/{alert_id}", response_model=AlertChannel, summary="Delete an alert channel")
def delete_alert(alert_id: AlertId, env: EnvironmentDep, engine: EngineDep) -> AlertChannel:
    """Remove the channel and what it was still owed (answered as it was)."""
    return engine.alerts.delete(env.id, alert_id)


@router.post(
    "/{alert_id}/test",
    response_model=AlertDelivery,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test alert",
)
def test_alert(alert_id: AlertId, env: EnvironmentDep, engine: EngineDep) -> AlertDelivery:
    """Owe the channel a test alert (event `alert.test`), sent at once; follow it in
    `GET /api/v1/alerts/deliveries`."""
    return engine.alerts.test(env.id, alert_id)
