"""`client.alerts`: the alert channels of the key's environment and their deliveries, for both
clients (docs/alerts.md)."""

from __future__ import annotations

from typing import Any

from conveyor.client._calls import Call, segment
from conveyor.client._namespaces import Namespace, S, operation
from conveyor.models import AlertChannel, AlertDelivery, CreatedAlertChannel


def _alert(alert_id: Any) -> str:
    return f"/api/v1/alerts/{segment(alert_id, 'alert id')}"


def _channels(data: Any) -> list[AlertChannel]:
    return [AlertChannel.model_validate(c) for c in data["data"]]


def _deliveries(data: Any) -> list[AlertDelivery]:
    return [AlertDelivery.model_validate(d) for d in data["data"]]


class Alerts(Namespace[S]):
    """`client.alerts`: send run failures, deploys, queue backlogs and an empty fleet of workers
    to a webhook, Slack or an email address."""

    @operation
    def create(
        self,
        event: str,
        *,
        webhook: str | None = None,
        slack: str | None = None,
        email: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        backlog: int | None = None,
        backlog_for: float | str | None = None,
        window: float | str | None = None,
    ) -> Call[CreatedAlertChannel]:
        """Add a channel for `event` (run.failed, deploy.succeeded, deploy.failed,
        queue.backlog, worker.fleet_empty): exactly one of `webhook`, `slack`, `email`. A
        webhook's signing secret is in the answer (`.secret`) this once."""
        body: dict[str, Any] = {"event": event}
        for name, value in (
            ("webhook", webhook),
            ("slack", slack),
            ("email", email),
            ("task", task),
            ("queue", queue),
            ("backlog", backlog),
            ("backlog_for", backlog_for),
            ("window", window),
        ):
            if value is not None:
                body[name] = value
        return Call("POST", "/api/v1/alerts", CreatedAlertChannel.model_validate, body=body)

    @operation
    def retrieve(self, alert_id: str) -> Call[AlertChannel]:
        return Call("GET", _alert(alert_id), AlertChannel.model_validate)

    @operation
    def delete(self, alert_id: str) -> Call[AlertChannel]:
        """Remove a channel and what it was still owed (answered as it was)."""
        return Call("DELETE", _alert(alert_id), AlertChannel.model_validate)

    @operation
    def test(self, alert_id: str) -> Call[AlertDelivery]:
        """Send the channel a test alert now (event `alert.test`)."""
        return Call("POST", f"{_alert(alert_id)}/test", AlertDelivery.model_validate)

    @operation
    def deliveries(self, limit: int = 50) -> Call[list[AlertDelivery]]:
        """The environment's latest deliveries, newest first, with their status."""
        return Call(
            "GET", "/api/v1/alerts/deliveries", _deliveries, params=(("limit", str(limit)),)
        )

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(self) -> Call[list[AlertChannel]]:
        """The environment's channels, oldest first (a webhook's secret as a hint only)."""
        return Call("GET", "/api/v1/alerts", _channels)
