"""list_schedules, get_schedule and create_schedule: the cron schedules of scheduled tasks
(docs/schedules.md).

A scheduled task is declared with `@schedules.task`; its declarative schedule (`cron=` in the
code) follows the code, and imperative ones (one per customer, say) are made through the API.
These tools read both kinds and make imperative ones, through the Client. Bad input (a cron
that does not parse, an unknown time zone, a task that is missing or not a scheduled task) is
the server's error naming the argument, answered as a tool error.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.mcp.access import Access
from conveyor.mcp.answers import (
    CreatedSchedule,
    ScheduleDetails,
    ScheduleList,
    answer,
    schedule_line,
    schedule_text,
    tool_errors,
)
from conveyor.mcp.tools import READ, WRITE, EnvironmentArg, ProjectRefArg, add

TaskArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="The id of a scheduled task, as in @schedules.task(id=...) "
        "(get_current_worker lists the tasks; a scheduled one has a `schedule`)",
    ),
]
NO_SCHEDULE = "list_schedules shows the environment's schedules"
NO_TASK = (
    "get_current_worker lists the tasks; only those declared with @schedules.task take schedules"
)
DEV_NOTE = (
    "In dev, schedules fire only while `conveyor dev` runs; times passed while it was stopped "
    "are not caught up."
)


def register(server: MCPServer[Any], access: Access) -> None:
    async def list_schedules(
        task: Annotated[str | None, Field(description="Only schedules of this task")] = None,
        type: Annotated[
            Literal["DECLARATIVE", "IMPERATIVE"] | None,
            Field(
                description="DECLARATIVE: declared in the code (@schedules.task(cron=...)); "
                "IMPERATIVE: made through the API, the CLI or create_schedule"
            ),
        ] = None,
        external_id: Annotated[
            str | None, Field(description="Only schedules of this external id (a customer's)")
        ] = None,
        active: Annotated[
            bool | None, Field(description="Only active (true) or deactivated (false) ones")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, ScheduleList]:
        """List the cron schedules of an environment, newest first, with filters: each with its
        task, cron (and in words), time zone, next fire time, policies and external id. Pass
        next_cursor back as cursor for the next page; get_schedule shows one schedule's next
        fire times and recent fires."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            page = await client.schedules.list(
                task=task,
                type=type,
                external_id=external_id,
                active=active,
                limit=limit,
                cursor=cursor,
            )
        env = access.label(client)
        result = ScheduleList(environment=env, schedules=page.data, next_cursor=page.next_cursor)
        if not page.data:
            text = (
                f"No schedules match in {env}. Declare one in the code with "
                "@schedules.task(id=..., cron=...), or make one per customer with create_schedule."
            )
        else:
            text = "\n".join(
                [f"{len(page.data)} schedules in {env}:", *map(schedule_line, page.data)]
            )
            if page.next_cursor:
                text += f"\nMore: call again with cursor={page.next_cursor}"
        return answer(result, text)

    async def get_schedule(
        schedule_id: Annotated[
            str,
            Field(
                min_length=1,
                description="The schedule's id (sched_...), as list_schedules or "
                "create_schedule gave it",
            ),
        ],
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, ScheduleDetails]:
        """Get one schedule: its settings, its next five fire times (in its time zone) and its
        latest fires, newest first, each with the run it made and that run's status, or why it
        made none (skipped while the previous run still ran, or an error such as a task no longer
        defined). Use it to check when a schedule fires next and what its last runs did."""
        with tool_errors(NO_SCHEDULE):
            client = await access.environment(environment, project_ref)
            schedule = await client.schedules.retrieve(schedule_id)
        env = access.label(client)
        text = schedule_text(schedule)
        if env == "dev":
            text += f"\n{DEV_NOTE}"
        return answer(ScheduleDetails(environment=env, schedule=schedule), text)

    async def create_schedule(
        task: TaskArg,
        cron: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="Five fields, minute hour day-of-month month day-of-week "
                "('0 9 * * 1': Mondays at 09:00; '*/15 * * * *': every 15 minutes), or a "
                "shorthand: @yearly, @monthly, @weekly, @daily, @hourly. No seconds field.",
            ),
        ],
        timezone: Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                description="The IANA time zone the cron is read in ('Europe/Paris', "
                "'America/New_York'); daylight saving is followed",
            ),
        ] = "UTC",
        external_id: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=256,
                description="Yours: the customer or user this schedule is for; each run's "
                "payload carries it",
            ),
        ] = None,
        deduplication_key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=256,
                description="Makes creating idempotent: a schedule already holding this key is "
                "updated to these settings instead of a second one made "
                "(e.g. 'user-42-digest')",
            ),
        ] = None,
        catch_up: Annotated[
            Literal["latest", "none"],
            Field(
                description="After downtime: 'latest' makes one run for the most recent missed "
                "time; 'none' makes none for a time missed by more than a minute"
            ),
        ] = "latest",
        overlap: Annotated[
            Literal["allow", "skip"],
            Field(
                description="'skip': no run while the schedule's previous run has not ended "
                "(the fire is recorded as skipped); 'allow': runs may overlap"
            ),
        ] = "allow",
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, CreatedSchedule]:
        """Create a cron schedule of a scheduled task (@schedules.task), one per customer with
        external_id; with a deduplication_key, calling again updates that schedule instead of
        making another. Each fire time makes exactly one run, whose payload is a
        ScheduledPayload. Returns the schedule with its next fire times. Only create schedules
        when the user asked; a schedule that belongs in the code is
        @schedules.task(cron=...)."""
        with tool_errors(NO_TASK):
            client = await access.environment(environment, project_ref)
            schedule = await client.schedules.create(
                task=task,
                cron=cron,
                timezone=timezone,
                external_id=external_id,
                deduplication_key=deduplication_key,
                catch_up=catch_up,
                overlap=overlap,
            )
        env = access.label(client)
        # a new schedule was written once; one found by its deduplication key was updated
        updated = deduplication_key is not None and schedule.updated_at != schedule.created_at
        head = (
            f"Updated {schedule.id} (it held deduplication_key {deduplication_key!r}) in {env}:"
            if updated
            else f"Created {schedule.id} in {env}:"
        )
        text = f"{head}\n{schedule_text(schedule)}"
        if env == "dev":
            text += f"\n{DEV_NOTE}"
        result = CreatedSchedule(environment=env, schedule=schedule, updated_existing=updated)
        return answer(result, text)

    add(server, access, list_schedules, READ, "List schedules")
    add(server, access, get_schedule, READ, "Get a schedule's next fire times and recent fires")
    add(server, access, create_schedule, WRITE, "Create a schedule of a scheduled task")
