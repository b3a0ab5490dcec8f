"""Run routes: list (filtered, paginated), show, logs, trace, cancel and replay.

The environment always comes from the API key, so a run of another environment is simply
not found here. State changes (cancel, replay) are the engine's; this module only maps HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from conveyor.models import Run, RunStatus, Trace
from conveyor.server.auth import EngineDep, EnvironmentDep, ReaderDep
from conveyor.server.routing import ApiRoute
from conveyor.server.schemas import (
    API_RESPONSES,
    CONFLICT_RESPONSE,
    PUBLIC_TOKEN_RESPONSE,
    LogList,
    ReplayBody,
    RunList,
    Triggered,
    triggered,
)

router = APIRouter(
    route_class=ApiRoute, prefix="/api/v1/runs", tags=["runs"], responses=API_RESPONSES
)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # the API speaks UTC; a bare datetime is read as UTC
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


_STATUS = "|".join([*RunStatus, *(s.lower() for s in RunStatus)])
_STATUSES = re.compile(rf"({_STATUS})(,({_STATUS}))*")


def _known_statuses(value: str) -> str:
    if not _STATUSES.fullmatch(value):
        known = {*RunStatus, *(status.lower() for status in RunStatus)}
        bad = next((part for part in value.split(",") if part not in known), value)
        raise ValueError(
            f"unknown status {bad!r}; one of {', '.join(RunStatus)} (or in lower case), "
            "separated by commas"
        )
    return value


def _not_a_number(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9.eE+-]+", value.strip()):
        raise ValueError(
            "a date-time is written as ISO 8601, e.g. 2026-12-05T12:00:00Z, not as a number"
        )
    return value


# a date-time as the document says (pydantic alone would also take a number of seconds)
IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]

# one status, or several separated by commas; upper or lower case
StatusFilter = Annotated[
    str,
    AfterValidator(_known_statuses),
    WithJsonSchema({"type": "string", "pattern": f"^{_STATUSES.pattern}$"}),
]


def _statuses(values: list[str] | None) -> list[str]:
    """`?status=QUEUED&status=FAILED` and `?status=QUEUED,FAILED` mean the same."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip().upper() for part in value.split(",") if part.strip())
    return out


@router.get("", response_model=RunList, summary="List runs")
def list_runs(
    env: EnvironmentDep,
    engine: EngineDep,
    status_: Annotated[
        list[StatusFilter] | None,
        Query(alias="status", description="Run status; repeat it or separate with commas"),
    ] = None,
    task: Annotated[str | None, Query(description="Only runs of this task id")] = None,
    tag: Annotated[str | None, Query(description="Only runs carrying this tag")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Runs per page")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^run_[0-9a-z]{1,40}$", description="`next_cursor` of the previous page"),
    ] = None,
    created_from: Annotated[
        IsoDateTime | None, Query(description="ISO datetime; runs created at or after it")
    ] = None,
    created_to: Annotated[
        IsoDateTime | None, Query(description="ISO datetime; runs created before it")
    ] = None,
    roots: Annotated[
        bool, Query(description="Only root runs: those no other run triggered")
    ] = False,
) -> RunList:
    """Runs of the environment, newest first, one page at a time; each says how many runs it
    triggered (`child_count`)."""
    runs, next_cursor = engine.runs.list(
        env.id,
        statuses=_statuses(status_),
        task_id=task,
        tag=tag,
        limit=limit,
        cursor=cursor,
        created_from=_epoch(created_from),
        created_to=_epoch(created_to),
        roots=roots,
    )
    return RunList(data=runs, next_cursor=next_cursor)


@router.get(
    "/{run_id}", response_model=Run, summary="Retrieve a run", responses=PUBLIC_TOKEN_RESPONSE
)
def retrieve_run(run_id: str, reader: ReaderDep, engine: EngineDep) -> Run:
    """The run with its attempt count (`attempts`) and finished attempts (`attempt_list`).
    A public access token reads the runs it names (403 for any other)."""
    return reader.run(engine, run_id, with_attempts=True)


@router.get("/{run_id}/logs", response_model=LogList, summary="A run's logs")
def run_logs(run_id: str, env: EnvironmentDep, engine: EngineDep) -> LogList:
    return LogList(data=engine.runs.logs(env.id, run_id))


@router.get("/{run_id}/trace", response_model=Trace, summary="A run's trace")
def run_trace(run_id: str, env: EnvironmentDep, engine: EngineDep) -> Trace:
    """The run's spans as a tree: the run, its attempts, and the durable calls each attempt
    made (steps, triggers with the child runs they made, waits, tokens). An open span has
    `end: null`."""
    return engine.runs.trace(env.id, run_id)


@router.post(
    "/{run_id}/cancel", response_model=Run, summary="Cancel a run", responses=CONFLICT_RESPONSE
)
def cancel_run(run_id: str, env: EnvironmentDep, engine: EngineDep) -> Run:
    """Cancel a run that has not ended (409 if it has). An executing attempt is stopped."""
    return engine.runs.cancel(env.id, run_id)


@router.post(
    "/{run_id}/replay",
    response_model=Triggered,
    status_code=status.HTTP_201_CREATED,
    summary="Replay a run",
)
def replay_run(
    run_id: str,
    env: EnvironmentDep,
    engine: EngineDep,
    body: Annotated[ReplayBody | None, Body()] = None,
) -> Triggered:
    """A new run of the same task with the same options, and the same payload unless the
    body gives `payload` (which may be null)."""
    # "payload" present (even null) replaces the payload; absent keeps the original
    use_payload = body is not None and "payload" in body.model_fields_set
    run = engine.runs.replay(
        env.id, run_id, body.payload if body is not None else None, use_payload=use_payload
    )
    return triggered(run)
