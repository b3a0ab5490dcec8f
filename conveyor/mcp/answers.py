"""What the MCP tools answer: typed results (the `outputSchema` a client validates) plus a
readable text of the same facts, and how expected failures become tool errors.

A tool returns `answer(model, text)`: the model as `structuredContent`, the text as content, so
a host that shows only text still gives the model every id it needs. Expected failures
(unknown run, wrong key, finished run) are raised as `ToolError` with a message saying what to
do next; anything else stays the SDK's generic error, with the traceback on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from conveyor.errors import (
    ApiError,
    AuthenticationError,
    Conflict,
    ConveyorError,
    InvalidRequest,
    NotFound,
    PayloadError,
)
from conveyor.models import (
    BulkAction,
    Deployment,
    LogLine,
    Organization,
    Project,
    QueueInfo,
    Run,
    RunStatus,
    Schedule,
    ScheduleFire,
    TaskDefinition,
    User,
)

MAX_VALUE_CHARS = 50_000  # a payload, output or log message larger than this is cut in answers
MAX_TEXT_VALUE = 2_000  # ... and in the readable text, shorter still


def answer(result: BaseModel, text: str) -> CallToolResult:
    """A tool result: `result` as structured content, `text` for whoever reads text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json"),
    )


@contextmanager
def tool_errors(what: str = "") -> Iterator[None]:
    """Turn Conveyor's expected errors into tool errors the model can act on."""
    try:
        yield
    except ToolError:
        raise
    except NotFound as exc:
        raise ToolError(f"{exc.message}{'; ' + what if what else ''}") from exc
    except AuthenticationError as exc:
        raise ToolError(
            f"{exc.message}. The user must fix the credentials `conveyor mcp` runs with "
            "(see the whoami tool)."
        ) from exc
    except Conflict as exc:
        raise ToolError(exc.message) from exc
    except (PayloadError, InvalidRequest) as exc:
        raise ToolError(f"{exc.message}; fix the arguments and call again") from exc
    except ApiError as exc:
        raise ToolError(exc.message) from exc
    except ConveyorError as exc:
        raise ToolError(exc.message) from exc


def bounded(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    """`value`, or a marked preview of it when its JSON is longer than `limit` characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return value
    return {"truncated": True, "json_chars": len(text), "preview": text[:limit]}


def shown(value: Any, limit: int = MAX_TEXT_VALUE) -> str:
    """A value as compact JSON for the readable text, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars in all)"


def when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


# -- docs -----------------------------------------------------------------------------------


class DocHit(BaseModel):
    page: str = Field(description="Path of the page under docs/")
    title: str
    section: str
    link: str
    text: str


class DocsAnswer(BaseModel):
    query: str
    results: list[DocHit]


class DocsPage(BaseModel):
    page: str
    text: str


# -- accounts -------------------------------------------------------------------------------


class Identity(BaseModel):
    """Who this MCP server acts as, and where."""

    api_url: str | None = None
    credential: Literal["environment_key", "personal_access_token", "both", "none"]
    environment: str | None = Field(
        None, description="The environment of the key, when there is one"
    )
    user: User | None = None
    project: str | None = Field(
        None, description="The project of the Conveyor config in the working folder"
    )
    dev_server_file: str | None = None
    readonly: bool = False
    dev_only: bool = False
    project_ref: str | None = None
    problems: list[str] = Field(default_factory=list)


class Organizations(BaseModel):
    organizations: list[Organization]


class Projects(BaseModel):
    projects: list[Project]


class InitializedProject(BaseModel):
    directory: str
    project: str
    created: list[str]
    updated: list[str]
    kept: list[str]
    server_project: Project | None = None
    next_steps: list[str]


# -- tasks ----------------------------------------------------------------------------------


class Worker(BaseModel):
    """The tasks the environment's workers registered, and its queues."""

    api_url: str
    environment: str
    tasks: list[TaskDefinition]
    queues: list[QueueInfo]


class TaskSchema(BaseModel):
    task_id: str
    has_schema: bool
    payload_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the payload is validated against"
    )


class Triggered(BaseModel):
    run_id: str
    task_id: str
    environment: str
    is_cached: bool = Field(False, description="True when the idempotency key already had this run")


# -- runs -----------------------------------------------------------------------------------


class RunSummary(BaseModel):
    id: str
    task_id: str
    status: RunStatus
    attempts: int
    tags: list[str]
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls(
            id=run.id,
            task_id=run.task_id,
            status=run.status,
            attempts=run.attempts,
            tags=run.tags,
            created_at=run.created_at,
            started_at=run.started_at,
            completed_at=run.completed_at,
        )


class RunList(BaseModel):
    environment: str
    runs: list[RunSummary]
    next_cursor: str | None = Field(
        None, description="Pass as cursor for the next page; null on the last page"
    )


class RunDetails(BaseModel):
    environment: str
    run: Run
    logs: list[LogLine]
    logs_omitted: int = Field(0, description="Earlier log lines left out of this answer")
    trace: Any = Field(None, description="The run's spans, when the server offers traces")


class WaitOutcome(BaseModel):
    run: Run
    finished: bool = Field(
        description="False when the timeout passed first; call again to keep waiting"
    )
    waited_seconds: float


class CanceledRun(BaseModel):
    run: RunSummary


class BulkAnswer(BaseModel):
    action: BulkAction
    environment: str


def bulk_text(action: BulkAction) -> str:
    """A bulk action's progress in a line."""
    verb = "canceled" if action.kind == "cancel" else "replayed"
    line = (
        f"Bulk {action.kind} {action.id} is {action.status}: {action.done} of {action.total} "
        f"runs {verb}"
    )
    if action.skipped:
        line += f", {action.skipped} had ended"
    if action.failed:
        line += f", {action.failed} failed ({action.error})"
    return line + "."


class TokenAnswer(BaseModel):
    id: str
    status: str
    completed_at: datetime | None = None


# -- realtime: metadata and streams --------------------------------------------------------


class RunMetadataAnswer(BaseModel):
    """A run's metadata and tags, as its code (`metadata.*`, `tags.add`) or a backend
    (`runs.update_metadata`) left them."""

    environment: str
    run: RunSummary
    metadata: Any = Field(
        description="The run's metadata object (a marked preview when it is very large)"
    )
    metadata_bytes: int = Field(description="Size of the metadata as JSON (at most 256 KB)")
    parent_id: str | None = Field(None, description="The run that triggered this one")
    root_id: str | None = Field(None, description="The run at the top of its tree")


class StreamAnswer(BaseModel):
    """The chunks of a run's stream (`streams.pipe`) read so far."""

    environment: str
    run_id: str
    stream: str
    run_status: RunStatus
    ended: bool = Field(
        description="True when the stream ended (or its run ended without ending it): "
        "nothing more will come"
    )
    chunk_count: int = Field(description="Chunks read, including those left out of `chunks`")
    chunks: list[Any] = Field(description="The chunks in order, the first ones when there are many")
    chunks_omitted: int = Field(0, description="Chunks read but left out of this answer")
    text: str | None = Field(
        None, description="Every chunk joined, when all are text (an LLM's tokens); else null"
    )
    waited_seconds: float


# -- deploys -------------------------------------------------------------------------------


class DeployList(BaseModel):
    """A page of the versions deployed to an environment, newest first."""

    environment: str
    current_version: str | None = Field(
        None,
        description="The version new runs start on; null while nothing is "
        "deployed (always, in dev)",
    )
    deploys: list[Deployment]
    next_cursor: str | None = Field(
        None, description="Pass as cursor for the next page; null on the last page"
    )
    message: str | None = Field(None, description="Why the list is empty, when it is")


class DeployOutcome(BaseModel):
    """What a deploy (or a dry run of one) did."""

    environment: str = Field(description="staging, prod or preview")
    branch: str | None = Field(None, description="The branch of a preview deploy")
    dry_run: bool
    version: str | None = Field(None, description="The new version (YYYYMMDD.N); null on a dry run")
    is_current: bool = Field(
        False, description="New runs start on it (false on a dry run and with skip_promotion)"
    )
    tasks: list[str] = Field(description="Ids of the tasks imported from the bundle")
    files: list[str] = Field(description="The files the bundle holds")
    bundle_size: int
    bundle_sha256: str
    deployment: Deployment | None = Field(None, description="The version as the server recorded it")


# -- schedules -----------------------------------------------------------------------------


class ScheduleList(BaseModel):
    """A page of an environment's schedules, newest first."""

    environment: str
    schedules: list[Schedule]
    next_cursor: str | None = Field(
        None, description="Pass as cursor for the next page; null on the last page"
    )


class ScheduleDetails(BaseModel):
    """One schedule: its settings, its next five fire times (`upcoming`) and its latest fires
    (`recent_fires`, newest first, each with the run it made or why it made none)."""

    environment: str
    schedule: Schedule


class CreatedSchedule(BaseModel):
    environment: str
    schedule: Schedule
    updated_existing: bool = Field(
        False,
        description="True when a schedule already held the deduplication_key: that one was "
        "updated to these settings instead of a second one made",
    )


# -- readable text --------------------------------------------------------------------------


def run_line(run: Run | RunSummary) -> str:
    tags = f"  tags={','.join(run.tags)}" if run.tags else ""
    return (
        f"{run.id}  {run.task_id}  {run.status.value}  attempts={run.attempts}  "
        f"created={when(run.created_at)}{tags}"
    )


def run_text(run: Run) -> str:
    lines = [run_line(run), f"payload: {shown(run.payload)}"]
    if run.status.is_final:
        lines.append(
            f"output: {shown(run.output)}"
            if run.error is None
            else f"error: {run.error.name}: {run.error.message}"
            + (f" [{run.error.code}]" if run.error.code else "")
        )
    if run.metadata:
        lines.append(f"metadata: {shown(run.metadata)}")
    if run.waiting_on:
        lines.append("waiting on: " + ", ".join(f"{w.kind} {w.id}" for w in run.waiting_on))
    if run.next_attempt_at and not run.status.is_final:
        lines.append(f"next attempt at {when(run.next_attempt_at)}")
    for attempt in run.attempt_list or []:
        error = f"  {attempt.error.name}: {attempt.error.message}" if attempt.error else ""
        lines.append(
            f"  attempt {attempt.number}: {attempt.status} {when(attempt.started_at)} -> "
            f"{when(attempt.completed_at)}{error}"
        )
    return "\n".join(lines)


def deploy_line(deployment: Deployment) -> str:
    git = deployment.details.get("git")
    commit = (
        f"  commit={str(git.get('commit', ''))[:8]}"
        if isinstance(git, dict) and git.get("commit")
        else ""
    )
    return (
        f"{'*' if deployment.is_current else ' '} {deployment.version}  {deployment.status}  "
        f"{'current' if deployment.is_current else 'not current'}  tasks={len(deployment.tasks)}  "
        f"created={when(deployment.created_at)}  promoted={when(deployment.promoted_at)}{commit}"
    )


def log_text(line: LogLine) -> str:
    extra = f" {shown(line.attributes, 300)}" if line.attributes else ""
    return f"{when(line.ts)} [{line.level}] (attempt {line.attempt}) {line.message}{extra}"


def local_when(moment: datetime | None, timezone: str) -> str:
    """A moment in a schedule's time zone, with its offset: "2027-01-18T09:00:00+01:00"."""
    if moment is None:
        return "-"
    try:
        return moment.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")
    except (ZoneInfoNotFoundError, ValueError):
        return when(moment)


def schedule_line(schedule: Schedule) -> str:
    s = schedule
    state = f"next={local_when(s.next_fire_at, s.timezone)}" if s.active else "INACTIVE"
    extra = "".join(
        f"  {name}={value}"
        for name, value in (("external_id", s.external_id), ("dedup", s.deduplication_key))
        if value
    )
    return (
        f"{s.id}  {s.task}  {s.type.lower()}  '{s.cron}' {s.timezone} ({s.cron_description})  "
        f"{state}  catch_up={s.catch_up} overlap={s.overlap}{extra}"
    )


def fire_line(fire: ScheduleFire, timezone: str) -> str:
    at = local_when(fire.timestamp, timezone)
    if fire.outcome == "triggered":
        status = f" ({fire.run_status.value})" if fire.run_status else ""
        return f"  {at}  triggered {fire.run_id or '-'}{status}"
    return f"  {at}  {fire.outcome}: {fire.message or '-'}"


def schedule_text(schedule: Schedule) -> str:
    s = schedule
    lines = [schedule_line(s)]
    if s.type == "DECLARATIVE":
        lines.append(
            f"declared in the code by @schedules.task(id={s.task!r}, cron=...): change it there "
            "and reload or deploy; it can only be activated or deactivated from outside"
        )
    lines.append(
        "next fire times: " + ", ".join(local_when(t, s.timezone) for t in s.upcoming)
        if s.upcoming
        else "next fire times: none (inactive)"
    )
    if s.last_fired_at:
        lines.append(f"last run: {s.last_run_id} for {local_when(s.last_fired_at, s.timezone)}")
    fires = s.recent_fires or []
    lines.append(f"recent fires ({len(fires)}, newest first):" if fires else "no fires yet")
    lines.extend(fire_line(f, s.timezone) for f in fires)
    return "\n".join(lines)
