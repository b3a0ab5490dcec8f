"""`schedules`: scheduled tasks, and the schedules that fire them (docs/schedules.md).

    from conveyor import schedules

    @schedules.task(id="daily-report", cron="0 6 * * *", timezone="Europe/Paris")
    async def daily_report(payload: schedules.ScheduledPayload, ctx) -> None:
        ...  # payload.timestamp, .last_timestamp, .timezone, .schedule_id, .external_id, .upcoming

    @schedules.task(id="send-digest")          # no cron: only schedules made through the API
    async def send_digest(payload: schedules.ScheduledPayload) -> None: ...

    await schedules.create(task="send-digest", cron="0 9 * * 1", timezone="America/New_York",
                           external_id="user-42", deduplication_key="user-42-digest")

A scheduled task is a task whose payload is a `ScheduledPayload`; the platform keeps its
declarative schedule (the `cron` given here) in step with the code at every load and deploy.
`schedules.create/retrieve/list/update/activate/deactivate/delete` are the default client's
(`AsyncClient().schedules`; `Client().schedules` the same, synchronously).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar, overload

from conveyor.client._schedules import Schedules
from conveyor.client.default import DefaultSender
from conveyor.cron import Cron, CronError
from conveyor.errors import TaskDefinitionError
from conveyor.models import ScheduledPayload, TaskSchedule
from conveyor.sdk.queue import Queue
from conveyor.sdk.task import Task

R = TypeVar("R")
CATCH_UP = ("latest", "none")
OVERLAP = ("allow", "skip")


class ScheduledTaskDecorator(Protocol):
    @overload
    def __call__(
        self, fn: Callable[[ScheduledPayload, Any], Coroutine[Any, Any, R]], /
    ) -> Task[ScheduledPayload, R]: ...
    @overload
    def __call__(
        self, fn: Callable[[ScheduledPayload], Coroutine[Any, Any, R]], /
    ) -> Task[ScheduledPayload, R]: ...
    @overload
    def __call__(
        self, fn: Callable[[ScheduledPayload, Any], R], /
    ) -> Task[ScheduledPayload, R]: ...
    @overload
    def __call__(self, fn: Callable[[ScheduledPayload], R], /) -> Task[ScheduledPayload, R]: ...


def scheduled_task(
    *,
    id: str,
    cron: str | None = None,
    timezone: str = "UTC",
    catch_up: str = "latest",
    overlap: str = "allow",
    queue: Queue | str | dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    max_duration: float | None = None,
    machine: str | None = None,
    ttl: float | str | None = None,
    description: str | None = None,
    on_start: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_cancel: Callable[..., Any] | None = None,
    on_complete: Callable[..., Any] | None = None,
    on_wait: Callable[..., Any] | None = None,
    on_resume: Callable[..., Any] | None = None,
    catch_error: Callable[..., Any] | None = None,
) -> ScheduledTaskDecorator:
    """A scheduled task: like `task`, its payload a `ScheduledPayload`. With `cron` (five fields
    or a shorthand such as "@daily", read in the IANA `timezone`) it has a declarative schedule;
    without, only schedules made with `schedules.create` fire it. `catch_up`: "latest" (after
    downtime, one run for the most recent missed time) or "none"; `overlap`: "allow" or "skip"
    (no run while the previous one of its schedule still runs)."""
    try:
        if cron is not None:
            spec = Cron.parse(cron, timezone)
            cron, timezone = spec.expression, spec.timezone
        else:
            Cron.parse("@daily", timezone)  # the time zone alone
    except CronError as exc:
        raise TaskDefinitionError(f"scheduled task {id!r}: {exc}") from None
    if catch_up not in CATCH_UP:
        raise TaskDefinitionError(
            f"scheduled task {id!r}: catch_up must be one of {', '.join(CATCH_UP)}, "
            f"got {catch_up!r}"
        )
    if overlap not in OVERLAP:
        raise TaskDefinitionError(
            f"scheduled task {id!r}: overlap must be one of {', '.join(OVERLAP)}, got {overlap!r}"
        )
    schedule = TaskSchedule(
        cron=cron,
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
    )

    def wrap(fn: Callable[..., Any]) -> Task[Any, Any]:
        return Task(
            fn,
            id=id,
            queue=queue,
            retry=retry,
            max_duration=max_duration,
            machine=machine,
            ttl=ttl,
            schema=ScheduledPayload,
            description=description,
            on_start=on_start,
            on_success=on_success,
            on_failure=on_failure,
            on_cancel=on_cancel,
            on_complete=on_complete,
            on_wait=on_wait,
            on_resume=on_resume,
            catch_error=catch_error,
            schedule=schedule,
        )

    return wrap


class ScheduleNamespace(Schedules[DefaultSender]):
    """`conveyor.schedules`: the `task` decorator and `ScheduledPayload`, and the default
    client's schedule calls (awaited)."""

    task = staticmethod(scheduled_task)
    ScheduledPayload = ScheduledPayload


schedules = ScheduleNamespace(DefaultSender())
