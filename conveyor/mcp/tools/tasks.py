"""get_current_worker, get_task_schema and trigger_task: the tasks of an environment,
and runs of them."""

import json
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.errors import NotFound
from conveyor.mcp.access import Access
from conveyor.mcp.answers import TaskSchema, Triggered, Worker, answer, tool_errors
from conveyor.mcp.tools import READ, WRITE, EnvironmentArg, ProjectRefArg, add
from conveyor.models import TaskDefinition, TriggerOptions


def task_line(task: TaskDefinition) -> str:
    limit = task.queue.concurrency_limit
    retry = task.retry
    return (
        f"{task.id}  queue={task.queue.name}{f' (limit {limit})' if limit is not None else ''}  "
        f"retry=max_attempts {retry.max_attempts}, factor {retry.factor:g}, {retry.min_timeout_ms}-"
        f"{retry.max_timeout_ms} ms  "
        f"max_duration={f'{task.max_duration:g}s' if task.max_duration else '-'}  "
        f"machine={task.machine}  schema={'yes' if task.payload_schema else 'no'}"
        f"{_scheduled(task)}{f'  file={task.file}' if task.file else ''}"
    )


def _scheduled(task: TaskDefinition) -> str:
    """How the code schedules a scheduled task, for the task's line."""
    if task.schedule is None:
        return ""
    if task.schedule.cron is None:
        return "  scheduled (no cron in the code: only schedules made with create_schedule)"
    return f"  scheduled cron='{task.schedule.cron}' {task.schedule.timezone}"


def register(server: MCPServer[Any], access: Access) -> None:
    async def get_current_worker(
        environment: EnvironmentArg = None, project_ref: ProjectRefArg = None
    ) -> Annotated[CallToolResult, Worker]:
        """List the tasks the environment's workers registered (each with its queue, retry policy,
        max_duration, machine and payload schema) and the environment's queues. Use it to find task
        ids before trigger_task."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            tasks = await client.tasks.list()
            queues = await client.queues.list()
        env = access.label(client)
        result = Worker(api_url=client.api_url, environment=env, tasks=tasks, queues=queues)
        if not tasks:
            return answer(
                result,
                f"No tasks registered in {env} at {client.api_url}: no worker has loaded the "
                "project's code yet (is `conveyor dev` running in the project, or a "
                "`conveyor worker`?)",
            )
        lines = [f"{len(tasks)} tasks in {env} at {client.api_url}:", *map(task_line, tasks)]
        paused = [q.name for q in queues if q.paused]
        if paused:
            lines.append(f"paused queues: {', '.join(paused)}")
        return answer(result, "\n".join(lines))

    async def get_task_schema(
        task_id: Annotated[str, Field(description="The task's id, as in @task(id=...)")],
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, TaskSchema]:
        """Get the JSON Schema a task's payload must match (tasks made with @schema_task have one;
        plain @task tasks take any JSON)."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            try:
                task = await client.tasks.retrieve(task_id)
            except NotFound:
                known = ", ".join(t.id for t in await client.tasks.list()) or "none"
                raise ToolError(
                    f"no task {task_id!r} in {access.label(client)}; the registered tasks are: "
                    f"{known}"
                ) from None
        result = TaskSchema(
            task_id=task.id,
            has_schema=task.payload_schema is not None,
            payload_schema=task.payload_schema,
        )
        text = (
            f"payload schema of {task.id}:\n{json.dumps(task.payload_schema, indent=2)}"
            if task.payload_schema
            else (
                f"{task.id} has no payload schema: its payload is any JSON value the task code "
                "reads"
            )
        )
        return answer(result, text)

    async def trigger_task(
        task_id: Annotated[str, Field(description="The task's id, as in @task(id=...)")],
        payload: Annotated[
            Any,
            Field(
                description="The payload, any JSON value (an object for most tasks; "
                "see get_task_schema)"
            ),
        ] = None,
        options: Annotated[
            TriggerOptions | None,
            Field(
                description="Trigger options: idempotency_key, delay "
                "('10m', seconds or ISO time), ttl, tags, metadata, queue, concurrency_key, "
                "priority, max_attempts, max_duration, machine"
            ),
        ] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, Triggered]:
        """Trigger a run of a task and return its run id at once. Only wait for it
        (wait_for_run_to_complete) when the user asked for the result;
        get_run_details shows its state."""
        with tool_errors("get_current_worker lists the tasks"):
            client = await access.environment(environment, project_ref)
            handle = await client.tasks.trigger(task_id, payload, options=options)
        env = access.label(client)
        result = Triggered(
            run_id=handle.id,
            task_id=handle.task_id or task_id,
            environment=env,
            is_cached=handle.is_cached,
        )
        text = (
            f"{'Existing run for this idempotency key' if handle.is_cached else 'Triggered'} "
            f"{handle.id} of {result.task_id} in {env}. get_run_details or "
            f"wait_for_run_to_complete with run_id={handle.id}."
        )
        return answer(result, text)

    add(server, access, get_current_worker, READ, "List the tasks and queues of an environment")
    add(server, access, get_task_schema, READ, "Get a task's payload schema")
    add(server, access, trigger_task, WRITE, "Trigger a task")
