"""list_runs, get_run_details, wait_for_run_to_complete, cancel_run, replay_run, complete_token,
and by filter: bulk_cancel_runs, bulk_replay_runs, get_bulk_action."""

import time
from datetime import datetime
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.client import AsyncClient
from conveyor.mcp.access import Access
from conveyor.mcp.answers import (
    BulkAnswer,
    CanceledRun,
    RunDetails,
    RunList,
    RunSummary,
    TokenAnswer,
    Triggered,
    WaitOutcome,
    answer,
    bounded,
    bulk_text,
    log_text,
    run_line,
    run_text,
    tool_errors,
)
from conveyor.mcp.tools import DESTRUCTIVE, READ, WRITE, EnvironmentArg, ProjectRefArg, add
from conveyor.models import BulkAction, Run, RunStatus

RunIdArg = Annotated[
    str,
    Field(min_length=1, description="The run's id (run_...), as trigger_task or list_runs gave it"),
]
MAX_LOG_LINES = 200
NO_RUN = "run ids start with run_; list_runs shows the environment's runs"


def _bounded_run(run: Run) -> Run:
    return run.model_copy(update={"payload": bounded(run.payload), "output": bounded(run.output)})


async def run_trace(client: AsyncClient, run_id: str) -> Any:
    """The run's trace: its spans as a tree (the run, attempts, steps, waits, child runs)."""
    trace = await client.runs.trace(run_id)
    return trace.model_dump(mode="json")


BulkStatusArg = Annotated[list[RunStatus] | None, Field(description="Only runs in these statuses")]
BulkTaskArg = Annotated[str | None, Field(description="Only runs of this task")]
BulkTagArg = Annotated[str | None, Field(description="Only runs with this tag")]
BulkVersionArg = Annotated[str | None, Field(description="Only runs of this deployed version")]
BulkSinceArg = Annotated[
    str | None, Field(description='Only runs created in this last span: "1h", "30m", "2d"')
]
BulkAllArg = Annotated[
    bool,
    Field(description="Every run of the environment: only when the user asked for all of them"),
]
BulkWaitArg = Annotated[
    float,
    Field(ge=0, le=60, description="Seconds to wait for the action to finish before answering"),
]
NO_BULK = "get_bulk_action reads an action's progress; its id starts with bulk_"


async def _bulk_until(client: AsyncClient, action: BulkAction, wait_seconds: float) -> BulkAction:
    """The action once it has ended, or as it stands after `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while not action.is_final and time.monotonic() < deadline:
        await anyio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        action = await client.runs.bulk_action(action.id)
    return action


def register(server: MCPServer[Any], access: Access) -> None:
    async def list_runs(
        status: Annotated[
            list[RunStatus] | None, Field(description="Only runs in these statuses")
        ] = None,
        task_id: Annotated[str | None, Field(description="Only runs of this task")] = None,
        tag: Annotated[str | None, Field(description="Only runs with this tag")] = None,
        created_from: Annotated[
            datetime | None, Field(description="Only runs created at or after (ISO time)")
        ] = None,
        created_to: Annotated[
            datetime | None, Field(description="Only runs created before (ISO time)")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, RunList]:
        """List runs, newest first, with filters; pass next_cursor back as cursor for the next
        page."""
        with tool_errors():
            client = await access.environment(environment, project_ref)
            page = await client.runs.list(
                status=status,
                task=task_id,
                tag=tag,
                limit=limit,
                cursor=cursor,
                created_from=created_from,
                created_to=created_to,
            )
        env = access.label(client)
        result = RunList(
            environment=env,
            runs=[RunSummary.of(r) for r in page.data],
            next_cursor=page.next_cursor,
        )
        text = "\n".join(run_line(r) for r in page.data) or f"No runs match in {env}."
        if page.next_cursor:
            text += f"\nMore: call again with cursor={page.next_cursor}"
        return answer(result, text)

    async def get_run_details(
        run_id: RunIdArg,
        include_logs: Annotated[
            bool, Field(description="Also return the run's log lines (the last 200)")
        ] = True,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, RunDetails]:
        """Get a run: status, payload, output or error, every attempt with its error, what a waiting
        run waits on, its logs and (when the server has them) its trace. Use it to debug a failed
        run."""
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            run = await client.runs.retrieve(run_id)
            logs = await client.runs.logs(run_id) if include_logs else []
            trace = await run_trace(client, run_id)
        omitted = max(0, len(logs) - MAX_LOG_LINES)
        logs = [line.model_copy(update={"message": line.message[:4000]}) for line in logs[omitted:]]
        result = RunDetails(
            environment=access.label(client),
            run=_bounded_run(run),
            logs=logs,
            logs_omitted=omitted,
            trace=trace,
        )
        text = run_text(run)
        if include_logs:
            text += f"\nlogs ({len(logs)}{f', {omitted} earlier omitted' if omitted else ''}):\n"
            text += "\n".join(log_text(line) for line in logs) or "(none)"
        return answer(result, text)

    async def wait_for_run_to_complete(
        run_id: RunIdArg,
        ctx: Context,
        timeout_seconds: Annotated[
            int,
            Field(
                ge=1,
                le=300,
                description="Give up waiting after this long and return the run as it is",
            ),
        ] = 50,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, WaitOutcome]:
        """Wait until a run ends (COMPLETED, FAILED, CANCELED, ...) and return it with its output or
        error. Reports progress while it waits. If the timeout passes first it returns the run as it
        is with finished=false; call it again to keep waiting. Runs that wait on tokens or long
        delays may take much longer than any timeout: check get_run_details instead of waiting in a
        loop."""
        started = time.monotonic()
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            while True:
                run = await client.runs.retrieve(run_id)
                waited = time.monotonic() - started
                if run.status.is_final or waited >= timeout_seconds:
                    break
                await ctx.report_progress(
                    round(waited, 2), timeout_seconds, message=f"{run_id} is {run.status.value}"
                )
                await anyio.sleep(min(0.5 if waited < 5 else 1.0, timeout_seconds - waited))
        finished = run.status.is_final
        result = WaitOutcome(
            run=_bounded_run(run), finished=finished, waited_seconds=round(waited, 2)
        )
        head = (
            f"{run_id} ended {run.status.value} after {waited:.1f}s of waiting"
            if finished
            else (
                f"{run_id} is still {run.status.value} after {waited:.1f}s; call "
                "wait_for_run_to_complete again to keep waiting"
            )
        )
        return answer(result, f"{head}\n{run_text(run)}")

    async def cancel_run(
        run_id: RunIdArg, environment: EnvironmentArg = None, project_ref: ProjectRefArg = None
    ) -> Annotated[CallToolResult, CanceledRun]:
        """Cancel a run that has not ended (its children too). A finished run cannot be canceled."""
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            run = await client.runs.cancel(run_id)
        return answer(CanceledRun(run=RunSummary.of(run)), f"Canceled: {run_line(run)}")

    async def replay_run(
        run_id: RunIdArg,
        payload: Annotated[
            Any, Field(description="A new payload; leave it out to reuse the run's own")
        ] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, Triggered]:
        """Start a new run of the same task with the same options, and the same payload unless one
        is given. The original run is left as it is."""
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            handle = await (
                client.runs.replay(run_id)
                if payload is None
                else client.runs.replay(run_id, payload)
            )
        env = access.label(client)
        result = Triggered(run_id=handle.id, task_id=handle.task_id, environment=env)
        return answer(result, f"Replayed {run_id} as {handle.id} in {env}.")

    async def bulk_cancel_runs(
        status: BulkStatusArg = None,
        task_id: BulkTaskArg = None,
        tag: BulkTagArg = None,
        version: BulkVersionArg = None,
        since: BulkSinceArg = None,
        all_runs: BulkAllArg = False,
        wait_seconds: BulkWaitArg = 10,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, BulkAnswer]:
        """Cancel every unfinished run matching all the filters given (at least one), made by
        now; the platform works through them a chunk at a time. Say how many first (list_runs)
        and only do it when the user asked. Answers with the action's progress."""
        with tool_errors(NO_BULK):
            client = await access.environment(environment, project_ref)
            action = await client.runs.bulk_cancel(
                status=status, task=task_id, tag=tag, version=version, since=since, all=all_runs
            )
            action = await _bulk_until(client, action, wait_seconds)
        result = BulkAnswer(action=action, environment=access.label(client))
        return answer(result, bulk_text(action))

    async def bulk_replay_runs(
        status: BulkStatusArg = None,
        task_id: BulkTaskArg = None,
        tag: BulkTagArg = None,
        version: BulkVersionArg = None,
        since: BulkSinceArg = None,
        all_runs: BulkAllArg = False,
        wait_seconds: BulkWaitArg = 10,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, BulkAnswer]:
        """Replay every run matching all the filters given (at least one), made by now: one new
        run each, same task, payload and options (e.g. the FAILED runs of a task after a fix).
        Answers with the action's progress."""
        with tool_errors(NO_BULK):
            client = await access.environment(environment, project_ref)
            action = await client.runs.bulk_replay(
                status=status, task=task_id, tag=tag, version=version, since=since, all=all_runs
            )
            action = await _bulk_until(client, action, wait_seconds)
        result = BulkAnswer(action=action, environment=access.label(client))
        return answer(result, bulk_text(action))

    async def get_bulk_action(
        action_id: Annotated[
            str, Field(min_length=1, description="The bulk action's id (bulk_...)")
        ],
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, BulkAnswer]:
        """A bulk cancel or replay with its progress: runs matched, done, skipped, failed."""
        with tool_errors(NO_BULK):
            client = await access.environment(environment, project_ref)
            action = await client.runs.bulk_action(action_id)
        result = BulkAnswer(action=action, environment=access.label(client))
        return answer(result, bulk_text(action))

    async def complete_token(
        token_id: Annotated[
            str,
            Field(
                min_length=1,
                description="The waitpoint token's id (a WAITING run's waiting_on shows it)",
            ),
        ],
        data: Annotated[
            Any, Field(description="The JSON the waiting run receives as the token's output")
        ] = None,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, TokenAnswer]:
        """Complete a waitpoint token, so the runs waiting on it (wait.for_token) resume with
        `data`. Only do this when the user asked to (it stands for a person's approval or an outside
        event)."""
        with tool_errors("get_run_details of the waiting run shows its token under waiting_on"):
            client = await access.environment(environment, project_ref)
            token = await client.waitpoints.complete_token(token_id, data)
        result = TokenAnswer(id=token.id, status=token.status, completed_at=token.completed_at)
        return answer(result, f"Token {token.id} is {token.status}; the runs waiting on it resume.")

    add(server, access, list_runs, READ, "List runs")
    add(server, access, get_run_details, READ, "Get a run's details, logs and trace")
    add(server, access, wait_for_run_to_complete, READ, "Wait for a run to end")
    add(server, access, cancel_run, DESTRUCTIVE, "Cancel a run")
    add(server, access, replay_run, WRITE, "Replay a run")
    add(server, access, complete_token, WRITE, "Complete a waitpoint token")
    add(server, access, bulk_cancel_runs, DESTRUCTIVE, "Cancel runs matching filters")
    add(server, access, bulk_replay_runs, WRITE, "Replay runs matching filters")
    add(server, access, get_bulk_action, READ, "Get a bulk action's progress")
