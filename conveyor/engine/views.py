"""Rows of the store as the models the API shows. Pure conversions, no queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from conveyor.models import Attempt, LogLine, Run, RunError, RunStatus, WaitInfo
from conveyor.store import Row


def json_text(value: Any) -> str:
    """A value as the engine stores JSON: compact, UTF-8 as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def moment(ts: float | None) -> datetime | None:
    """An epoch time as the API shows it (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def run_view(row: Row) -> Run:
    status = RunStatus(row["status"])
    available_at = row.get("available_at")
    error = _json(row.get("error"))
    return Run(
        id=row["id"],
        task_id=row["task_id"],
        status=status,
        payload=_json(row["payload"]),
        output=_json(row.get("output")),
        error=RunError.model_validate(error) if error else None,
        attempts=row.get("attempt_count") or 0,
        max_attempts=row["max_attempts"],
        tags=_json(row["tags"]) or [],
        metadata=_json(row["metadata"]) or {},
        queue=row["queue"],
        concurrency_key=row.get("concurrency_key"),
        priority=row.get("priority") or 0,
        idempotency_key=row.get("idempotency_key"),
        machine=row.get("machine"),
        max_duration=row.get("max_duration"),
        parent_id=row.get("parent_id"),
        root_id=row.get("root_id"),
        batch_id=row.get("batch_id"),
        replayed_from=row.get("replayed_from"),
        version=row.get("version"),
        created_at=moment(row["created_at"]),
        updated_at=moment(row.get("updated_at")),
        started_at=moment(row.get("started_at")),
        completed_at=moment(row.get("completed_at")),
        delayed_until=moment(available_at) if status == RunStatus.DELAYED else None,
        next_attempt_at=moment(available_at)
        if status == RunStatus.QUEUED and (row.get("attempt_count") or 0) > 0
        else None,
        expires_at=moment(row.get("expires_at")),
        compute_seconds=row.get("compute_seconds") or 0.0,
    )


def attempt_view(row: Row) -> Attempt:
    error = _json(row["error"])
    return Attempt(
        number=row["number"],
        status=row["status"],
        worker_id=row["worker_id"],
        started_at=moment(row["started_at"]),
        completed_at=moment(row["completed_at"]),
        error=RunError.model_validate(error) if error else None,
        compute_seconds=row.get("compute_seconds") or 0.0,
    )


def log_view(row: Row) -> LogLine:
    return LogLine(
        run_id=row["run_id"],
        attempt=row["attempt"],
        seq=row["seq"],
        ts=moment(row["ts"]),
        level=row["level"],
        message=row["message"],
        attributes=_json(row["attributes"]),
    )


def wait_view(row: Row) -> WaitInfo:
    counted = row["kind"] in ("run", "batch")
    return WaitInfo(
        id=row["id"],
        kind=row["kind"],
        complete_at=moment(row["complete_at"]),
        done=row["done_count"] if counted else None,
        total=row["run_count"] if counted else None,
    )
