"""`client.schedules`: cron schedules of scheduled tasks, for both clients and the default one
(`from conveyor import schedules`; docs/schedules.md)."""

from __future__ import annotations

from typing import Any

from conveyor.client._calls import UNSET, Call, SchedulePage, segment
from conveyor.client._namespaces import Namespace, S, operation
from conveyor.errors import InvalidRequest
from conveyor.models import Schedule


def _schedule(schedule_id: Any, action: str = "") -> str:
    return f"/api/v1/schedules/{segment(schedule_id, 'schedule id')}{action}"


class Schedules(Namespace[S]):
    """`client.schedules`: create, read, change and remove the schedules of the key's
    environment. Declarative schedules (`@schedules.task(cron=...)`) follow the code; these
    calls make imperative ones, one per customer say, and activate or deactivate either kind."""

    @operation
    def create(
        self,
        *,
        task: str,
        cron: str,
        timezone: str = "UTC",
        external_id: str | None = None,
        deduplication_key: str | None = None,
        active: bool = True,
        catch_up: str = "latest",
        overlap: str = "allow",
    ) -> Call[Schedule]:
        """A schedule firing scheduled task `task` at each time of `cron` (five fields or a
        shorthand such as "@daily") in `timezone`. Creating again with the same
        `deduplication_key` updates that schedule instead of making another."""
        body: dict[str, Any] = {
            "task": task,
            "cron": cron,
            "timezone": timezone,
            "active": active,
            "catch_up": catch_up,
            "overlap": overlap,
        }
        if external_id is not None:
            body["external_id"] = external_id
        if deduplication_key is not None:
            body["deduplication_key"] = deduplication_key
        return Call("POST", "/api/v1/schedules", Schedule.model_validate, body=body)

    @operation
    def retrieve(self, schedule_id: str) -> Call[Schedule]:
        """A schedule with its next five fire times and its latest fires."""
        return Call("GET", _schedule(schedule_id), Schedule.model_validate)

    @operation
    def update(
        self,
        schedule_id: str,
        *,
        task: str = UNSET,
        cron: str = UNSET,
        timezone: str = UNSET,
        external_id: str | None = UNSET,
        catch_up: str = UNSET,
        overlap: str = UNSET,
    ) -> Call[Schedule]:
        """Change an imperative schedule; what is not given stays."""
        given = {
            "task": task,
            "cron": cron,
            "timezone": timezone,
            "external_id": external_id,
            "catch_up": catch_up,
            "overlap": overlap,
        }
        body = {k: v for k, v in given.items() if v is not UNSET}
        if not body:
            raise InvalidRequest("update needs at least one of: " + ", ".join(given))
        return Call("PUT", _schedule(schedule_id), Schedule.model_validate, body=body)

    @operation
    def activate(self, schedule_id: str) -> Call[Schedule]:
        """Fire again from the next fire time on."""
        return Call("POST", _schedule(schedule_id, "/activate"), Schedule.model_validate)

    @operation
    def deactivate(self, schedule_id: str) -> Call[Schedule]:
        """Stop firing until activated again."""
        return Call("POST", _schedule(schedule_id, "/deactivate"), Schedule.model_validate)

    @operation
    def delete(self, schedule_id: str) -> Call[Schedule]:
        """Remove an imperative schedule (returned as it was); the runs it made stay."""
        return Call("DELETE", _schedule(schedule_id), Schedule.model_validate)

    # Defined last: in a class body, a method named `list` shadows the builtin in later annotations.
    @operation
    def list(
        self,
        *,
        task: str | None = None,
        external_id: str | None = None,
        type: str | None = None,
        active: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Call[SchedulePage]:
        """One page of schedules, newest first; pass `page.next_cursor` as `cursor` for the
        next."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequest(f"limit must be a whole number from 1 to 500, got {limit!r}")
        params: list[tuple[str, str]] = [("limit", str(limit))]
        for name, value in (
            ("task", task),
            ("external_id", external_id),
            ("type", type),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((name, str(value)))
        if active is not None:
            params.append(("active", "true" if active else "false"))

        def parse(data: Any) -> SchedulePage:
            return SchedulePage(
                [Schedule.model_validate(s) for s in data["data"]], data.get("next_cursor")
            )

        return Call("GET", "/api/v1/schedules", parse, params=tuple(params))
