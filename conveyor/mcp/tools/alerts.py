"""list_alerts and create_alert: an environment's alert channels and their latest deliveries
(docs/alerts.md).

A channel sends one event (a task's runs failing, a deploy succeeding or failing, a queue's
backlog lasting, the worker fleet going empty) to a webhook, a Slack incoming webhook or an
email address. create_alert answers a webhook's signing secret once: the receiver checks each
body's Conveyor-Signature header with `conveyor.webhooks.verify(body, header, secret)`. Bad
input (an address that is not one, an option of another event) is the server's error, answered
as a tool error.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from conveyor.mcp.access import Access
from conveyor.mcp.answers import answer, tool_errors
from conveyor.mcp.tools import READ, WRITE, EnvironmentArg, ProjectRefArg, add
from conveyor.models import AlertChannel, AlertDelivery, CreatedAlertChannel

Event = Literal[
    "run.failed", "deploy.succeeded", "deploy.failed", "queue.backlog", "worker.fleet_empty"
]
Duration = Annotated[
    str | None,
    Field(
        pattern=r"^[0-9][0-9a-z. ]{0,30}$",
        description="A duration such as '90s', '5m', '1h'",
    ),
]


class AlertList(BaseModel):
    """An environment's alert channels, oldest first, and its latest deliveries, newest first."""

    environment: str
    alerts: list[AlertChannel]
    deliveries: list[AlertDelivery]


class CreatedAlert(BaseModel):
    environment: str
    alert: CreatedAlertChannel


def _line(c: AlertChannel) -> str:
    where = ""
    if c.event == "run.failed":
        where = (f" task {c.task}," if c.task else "") + f" window {c.window_seconds:g}s"
    elif c.event == "queue.backlog":
        where = (f" queue {c.queue}," if c.queue else "") + (
            f" more than {c.backlog} for {c.backlog_for_seconds or 0:g}s"
        )
    return f"- {c.id}: {c.event} → {c.channel} {c.target}{where}"


def _delivery(d: AlertDelivery) -> str:
    error = f" (last error: {d.last_error})" if d.last_error else ""
    return f"- {d.id}: {d.event} {d.status}, count {d.count}, {d.attempts} attempts{error}"


def register(server: MCPServer[Any], access: Access) -> None:
    async def list_alerts(
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, AlertList]:
        """List the environment's alert channels (event, channel, target, filters) and its
        latest 20 deliveries with their status (gathering, pending, delivered, failed), count
        and last error. Use it to see how the user is told about failures, or why an alert did
        not arrive."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            channels = await client.alerts.list()
            deliveries = await client.alerts.deliveries(limit=20)
        env = access.label(client)
        lines = [f"{len(channels)} alert channels in {env}:", *map(_line, channels)]
        if not channels:
            lines = [f"No alert channels in {env}; create_alert adds one."]
        if deliveries:
            lines += ["Latest deliveries:", *map(_delivery, deliveries)]
        result = AlertList(environment=env, alerts=channels, deliveries=deliveries)
        return answer(result, "\n".join(lines))

    async def create_alert(
        event: Annotated[
            Event,
            Field(
                description="run.failed: a task's runs ended FAILED, CRASHED, SYSTEM_FAILURE, "
                "TIMED_OUT or EXPIRED (failures within `window` make one alert with their count); "
                "deploy.succeeded / deploy.failed; queue.backlog: more than `backlog` runs "
                "waiting for `backlog_for`; worker.fleet_empty: the last worker stopped"
            ),
        ],
        webhook: Annotated[
            str | None, Field(max_length=2000, description="An http(s) URL to POST signed JSON to")
        ] = None,
        slack: Annotated[
            str | None, Field(max_length=2000, description="A Slack incoming webhook URL")
        ] = None,
        email: Annotated[
            str | None, Field(max_length=254, description="An email address (the server's SMTP)")
        ] = None,
        task: Annotated[
            str | None, Field(min_length=1, max_length=200, description="run.failed: one task")
        ] = None,
        queue: Annotated[
            str | None, Field(min_length=1, max_length=200, description="queue.backlog: one queue")
        ] = None,
        backlog: Annotated[
            int | None, Field(ge=0, le=10**9, description="queue.backlog: runs (default 100)")
        ] = None,
        backlog_for: Duration = None,
        window: Duration = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, CreatedAlert]:
        """Create an alert channel: `event` sent to exactly one of `webhook`, `slack`, `email`.
        A webhook's signing secret is in this answer only: give it to the user to check the
        Conveyor-Signature header with conveyor.webhooks.verify. Only create alerts when the
        user asked."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            made = await client.alerts.create(
                event,
                webhook=webhook,
                slack=slack,
                email=email,
                task=task,
                queue=queue,
                backlog=backlog,
                backlog_for=backlog_for,
                window=window,
            )
        env = access.label(client)
        text = f"Created in {env}:\n{_line(made)}"
        if made.secret:
            text += (
                f"\nSigning secret (shown only this once, keep it): {made.secret}\nThe receiver "
                "checks each body with conveyor.webhooks.verify(body, header, secret)."
            )
        return answer(CreatedAlert(environment=env, alert=made), text)

    add(server, access, list_alerts, READ, "List alert channels and deliveries")
    add(server, access, create_alert, WRITE, "Create an alert channel")
