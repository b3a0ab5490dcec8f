"""The vocabulary of running the platform: accounts and keys, deployments, traces, schedules,
usage, bulk actions and environment variables (conveyor/models/__init__.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from conveyor.models.core import (
    _DURATION_SCHEMA,
    CatchUp,
    Overlap,
    RunStatus,
    WireModel,
    _duration,
)

# -- accounts: who may act on which project, and the environments' keys --------------------

EnvironmentKind = Literal["dev", "staging", "prod", "preview"]


class Organization(BaseModel):
    """An organization: it owns projects; its members may act on all of them."""

    id: str
    slug: str
    name: str
    role: str | None = Field(None, description="The caller's role in it: owner or member")


class User(BaseModel):
    """The person a personal access token (cv_pat_...) belongs to."""

    id: str
    name: str
    is_admin: bool = False
    organizations: list[Organization] = Field(default_factory=list)


class ProjectEnvironment(BaseModel):
    """One environment of a project: dev, staging, prod, or preview-<branch>."""

    id: str
    project: str
    slug: str = Field(description="dev, staging, prod, or preview-<branch>")
    kind: EnvironmentKind
    branch: str | None = Field(None, description="The git branch a preview environment serves")
    created_at: datetime


class Project(BaseModel):
    """A project: its tasks run in its environments, each with its own runs, queues and key."""

    id: str = Field(description="The project ref, proj_...")
    slug: str
    name: str
    organization: str = Field(description="Slug of the organization that owns it")
    created_at: datetime
    environments: list[ProjectEnvironment] = Field(default_factory=list)


class EnvironmentKey(BaseModel):
    """An environment's secret key: what `CONVEYOR_SECRET_KEY` holds for a backend or a worker."""

    project: str
    environment: str = Field(description="The environment's slug")
    kind: EnvironmentKind
    secret_key: str
    rotated: bool = Field(
        False,
        description="True when this answer comes from a rotation: the previous key is revoked",
    )


class Deployment(BaseModel):
    """A deployed version of a project's task code in one environment. Runs lock to the current
    version when they start; promoting another version (an older one: a rollback) changes what
    new runs use, never what runs in flight use."""

    id: str
    version: str = Field(description="YYYYMMDD.N: the date of the deploy and its number that day")
    environment: str = Field(
        description="The environment's slug: staging, prod or preview-<branch>"
    )
    status: Literal["DEPLOYED"] = "DEPLOYED"
    is_current: bool = Field(False, description="New runs start on this version")
    tasks: list[str] = Field(
        default_factory=list, description="Ids of the tasks the version defines"
    )
    bundle_sha256: str
    bundle_size: int = Field(description="Bytes of the compressed bundle")
    lock_sha256: str = Field(
        description="Hash of the dependency lock: versions with the same one share a worker's "
        "environment"
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Python and Conveyor versions of the deploying "
        "machine, and git branch and commit when known",
    )
    created_at: datetime
    promoted_at: datetime | None = Field(None, description="When it last became current")


class DeploymentBundle(BaseModel):
    """A version's code as a worker fetches it: the tar.gz bundle, base64-encoded."""

    version: str
    bundle_sha256: str
    lock_sha256: str
    bundle: str = Field(description="The tar.gz bundle, base64")


SpanKind = Literal["run", "attempt", "trigger", "wait", "step", "token"]
SpanStatus = Literal["open", "ok", "error", "canceled"]


class Span(BaseModel):
    """One span of a run's trace: the run, an attempt, or a durable call made in an attempt
    (a step, a trigger with the child runs it made, a wait, a token). `end` is null while the
    span is open; `children` are the spans inside it, in start order."""

    id: str
    parent_id: str | None = None
    kind: SpanKind
    name: str
    start: datetime
    end: datetime | None = None
    status: SpanStatus = Field(description="open while it lasts; then ok, error or canceled")
    attributes: dict[str, Any] = Field(default_factory=dict)
    children: list[Span] = Field(default_factory=list)


class Trace(BaseModel):
    """A run's trace: its span tree. `truncated` when the run made more durable calls or child
    runs than one trace shows (the first ones are shown)."""

    run_id: str
    root: Span
    truncated: bool = False


# -- schedules ------------------------------------------------------------------------------


class ScheduledPayload(BaseModel):
    """The payload of a run a schedule made: the time it fired for (exact to the second), the
    previous time it fired, and the next five."""

    timestamp: datetime
    last_timestamp: datetime | None = None
    timezone: str = "UTC"
    schedule_id: str
    external_id: str | None = None
    upcoming: list[datetime] = Field(default_factory=list)


class ScheduleFire(BaseModel):
    """One fire time of a schedule and what it did."""

    timestamp: datetime
    outcome: Literal["triggered", "skipped", "error"]
    run_id: str | None = None
    run_status: RunStatus | None = None
    message: str | None = Field(None, description="Why no run was made (skipped or error)")


class Schedule(BaseModel):
    """A cron schedule that triggers a scheduled task: declared in the code (DECLARATIVE) or made
    through the API (IMPERATIVE, often one per customer with `external_id`)."""

    id: str
    task: str
    type: Literal["DECLARATIVE", "IMPERATIVE"]
    cron: str = Field(description="Five fields: minute hour day-of-month month day-of-week")
    cron_description: str = Field(description='The cron in words: "At 06:00 every day"')
    timezone: str = Field(description="The IANA time zone the cron is read in")
    external_id: str | None = None
    deduplication_key: str | None = None
    active: bool = True
    catch_up: CatchUp = Field(
        "latest", description="After downtime: one run for the latest missed time, or none"
    )
    overlap: Overlap = Field(
        "allow", description="skip: no run while the previous run of the schedule still runs"
    )
    next_fire_at: datetime | None = Field(None, description="None while inactive")
    upcoming: list[datetime] = Field(default_factory=list, description="The next five fire times")
    last_fired_at: datetime | None = None
    last_run_id: str | None = None
    created_at: datetime
    updated_at: datetime
    recent_fires: list[ScheduleFire] | None = Field(
        None, description="The latest fires, newest first (when one schedule is retrieved)"
    )


class TaskUsage(BaseModel):
    """The compute one task used in a period, on one machine preset."""

    task_id: str
    machine: str
    compute_seconds: float
    attempts: int  # attempts that ended in the period
    runs: int  # runs those attempts belong to


class Usage(BaseModel):
    """The compute an environment used in a period (`since` to `until`): the compute seconds of
    the attempts that ended in it, per task and machine preset, the most first."""

    since: datetime
    until: datetime
    compute_seconds: float
    attempts: int
    runs: int
    tasks: list[TaskUsage]


# -- bulk actions -----------------------------------------------------------------------------


def _status_list(value: Any) -> Any:
    """One status, several separated by commas, or a list; upper or lower case."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [v.strip().upper() if isinstance(v, str) else v for v in value]
    return value


class BulkFilters(WireModel):
    """Which runs a bulk action acts on: those matching every filter given. `since` (a duration
    such as "1h") means created in that span before the action; `all` acts on every run of the
    environment, and is needed when no other filter is given."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[list[RunStatus] | None, BeforeValidator(_status_list)] = None
    task: str | None = Field(None, min_length=1, max_length=256)
    tag: str | None = Field(None, min_length=1, max_length=128)
    version: str | None = Field(None, min_length=1, max_length=128)
    created_from: datetime | None = None
    created_to: datetime | None = None
    since: Annotated[float | str | None, _duration("since"), _DURATION_SCHEMA] = None
    all: bool = False

    def given(self) -> bool:
        """Whether any filter narrows the runs (`all` does not)."""
        return any(
            value is not None
            for value in (
                self.status,
                self.task,
                self.tag,
                self.version,
                self.created_from,
                self.created_to,
                self.since,
            )
        )


class BulkAction(BaseModel):
    """Canceling or replaying every run that matched filters when it was made, a chunk of runs
    at a time: RUNNING until each is handled (COMPLETED), or stopped (CANCELED)."""

    id: str
    kind: Literal["cancel", "replay"]
    status: Literal["RUNNING", "COMPLETED", "CANCELED"]
    filters: BulkFilters
    total: int = Field(description="Runs that matched when the action was made")
    done: int = Field(0, description="Runs canceled, or replayed")
    skipped: int = Field(0, description="Runs that had ended when a cancel reached them")
    failed: int = Field(0, description="Runs that could not be replayed (see `error`)")
    error: str | None = None
    chunks: int = Field(0, description="Transactions the action has taken so far")
    idempotency_key: str | None = None
    is_cached: bool = False  # an earlier request with the same idempotency key made it
    created_at: datetime
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def processed(self) -> int:
        """Runs handled so far, whatever became of them."""
        return self.done + self.skipped + self.failed

    @property
    def is_final(self) -> bool:
        return self.status != "RUNNING"


class EnvVar(BaseModel):
    """An environment variable of an environment, as the API shows it: its name and a short
    hash of its value (to tell two values apart), never the value."""

    name: str
    digest: str = Field(description="The first 12 hex digits of the value's sha256")
    created_at: datetime
    updated_at: datetime


class EnvVarList(BaseModel):
    """An environment's variables by name; `version` counts their changes."""

    data: list[EnvVar]
    version: int


AlertEvent = Literal[
    "run.failed", "deploy.succeeded", "deploy.failed", "queue.backlog", "worker.fleet_empty"
]
AlertChannelKind = Literal["webhook", "slack", "email"]


class AlertChannel(BaseModel):
    """An alert channel of an environment: one event sent to a webhook, a Slack incoming webhook
    or an email address (docs/alerts.md). A webhook's signing secret is shown once, when the
    channel is made (`secret`); after that only its hint."""

    id: str
    event: AlertEvent
    channel: AlertChannelKind
    target: str = Field(
        description="The webhook URL or email address; for Slack a hint of its secret URL"
    )
    secret_hint: str | None = Field(None, description="The end of a webhook's signing secret")
    task: str | None = Field(None, description="run.failed: only this task's failures")
    queue: str | None = Field(None, description="queue.backlog: only this queue")
    backlog: int | None = Field(None, description="queue.backlog: alert above this many runs")
    backlog_for_seconds: float | None = Field(None, description="queue.backlog: ... for this long")
    window_seconds: float = Field(
        description="run.failed: failures of one task within this window make one alert"
    )
    created_at: datetime


class CreatedAlertChannel(AlertChannel):
    """A channel just made: `secret` (a webhook's signing secret) is shown this once."""

    secret: str | None = None


class AlertChannelList(BaseModel):
    """An environment's alert channels, oldest first."""

    data: list[AlertChannel]


class AlertDelivery(BaseModel):
    """One alert owed to a channel and what became of it: `gathering` (a run.failed group still
    counting), `pending` (to send, or to try again at `next_at`), `delivered`, `failed` (every
    attempt failed)."""

    id: str
    channel_id: str
    event: str
    status: Literal["gathering", "pending", "delivered", "failed"]
    count: int = Field(description="Events in this alert (failed runs of a group)")
    run_ids: list[str] = Field(description="The first few runs of a run.failed group")
    details: dict[str, Any]
    attempts: int
    last_error: str | None = None
    next_at: datetime | None = None
    first_at: datetime
    last_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None


class AlertDeliveryList(BaseModel):
    """An environment's latest alert deliveries, newest first."""

    data: list[AlertDelivery]
