"""A run's trace: the spans of its life, derived from rows the engine keeps anyway.

    run hello                        created -> ended
    ├── attempt 1                    leased -> ended (an attempt in flight is open)
    │   ├── step charge-card         began -> journaled
    │   ├── trigger_and_wait resize  asked -> its children ended
    │   │   └── run resize           the child run (its own trace has its insides)
    │   ├── wait.for                 asked -> the duration passed
    │   └── token.wait               asked -> completed or timed out
    └── attempt 2

Durable calls hang under the attempt that made them (the last attempt leased before the
call was journaled). Pure: rows in, a Span tree out; the Engine reads the rows. Nothing here
queries or writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.models import FAILURE_STATUSES, RunStatus, Span, SpanKind, SpanStatus, Trace
from conveyor.store import Row

MAX_TRACE_ROWS = 5000  # journal entries, and child runs, one trace shows

_TRIGGER_KINDS = frozenset(
    {
        "trigger",
        "batch_trigger",
        "trigger_and_wait",
        "batch_trigger_and_wait",
        "batch.trigger_by_task",
        "batch.trigger_by_task_and_wait",
    }
)
_CALL_KINDS: dict[str, SpanKind] = {
    "step": "step",
    "now": "step",
    "uuid": "step",
    "wait.for": "wait",
    "wait.until": "wait",
    "token.wait": "wait",
    "token.create": "token",
    "token.complete": "token",
}


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _maybe_dt(ts: float | None) -> datetime | None:
    return None if ts is None else _dt(ts)


def run_span_status(status: str) -> SpanStatus:
    run_status = RunStatus(status)
    if run_status == RunStatus.COMPLETED:
        return "ok"
    if run_status == RunStatus.CANCELED:
        return "canceled"
    return "error" if run_status in FAILURE_STATUSES else "open"


def _attempt_status(status: str) -> SpanStatus:
    if status == "COMPLETED":
        return "ok"
    return "canceled" if status == "CANCELED" else "error"


def build_trace(
    run: Row,
    attempts: Sequence[Row],
    journal: Sequence[Row],
    children: Sequence[Row],
    *,
    now: float,
    truncated: bool = False,
) -> Trace:
    """The span tree of `run` from its attempt rows, its journal (trace_journal) and its child
    runs (child_runs). `now` decides whether a duration wait has passed."""
    root = Span(
        id=run["id"],
        kind="run",
        name=run["task_id"],
        start=_dt(run["created_at"]),
        end=_maybe_dt(run["completed_at"]),
        status=run_span_status(run["status"]),
        attributes={
            "task_id": run["task_id"],
            "status": run["status"],
            "queue": run["queue"],
            "attempts": run["attempt_count"],
            "tags": json.loads(run["tags"]),
        },
    )
    attempt_spans = _attempt_spans(run, attempts)
    children_by_id = {c["id"]: _child_span(c) for c in children}
    for entry in journal:
        span = _call_span(run["id"], entry, now)
        if span.kind == "trigger":
            for child_id in _child_ids(entry):
                child = children_by_id.pop(child_id, None)
                if child is not None:
                    span.children.append(child.model_copy(update={"parent_id": span.id}))
        _parent_of(entry["created_at"], attempt_spans, root).children.append(span)
    for child in children_by_id.values():  # children no journal entry names (a replayed child, say)
        root.children.append(child.model_copy(update={"parent_id": root.id}))
    root.children.extend(attempt_spans)
    for attempt in attempt_spans:
        attempt.parent_id = root.id
        for span in attempt.children:
            span.parent_id = attempt.id
    if root.end is not None:
        _close_open_calls(root, root.end, "canceled" if root.status == "canceled" else "error")
    _sort(root)
    return Trace(run_id=run["id"], root=root, truncated=truncated)


def _attempt_spans(run: Row, attempts: Sequence[Row]) -> list[Span]:
    """One span per attempt. The latest attempt has no row until it ends; while the run goes on
    it is open, and if the run ended without it reporting (canceled while waiting, say) it ends
    with the run."""
    spans = [
        Span(
            id=f"{run['id']}/attempt/{a['number']}",
            kind="attempt",
            name=f"attempt {a['number']}",
            start=_dt(a["started_at"]),
            end=_dt(a["completed_at"]),
            status=_attempt_status(a["status"]),
            attributes={
                "number": a["number"],
                "status": a["status"],
                "worker_id": a["worker_id"],
                "error": json.loads(a["error"]) if a["error"] else None,
            },
        )
        for a in attempts
    ]
    current = run["attempt_count"]
    began = run["attempt_started_at"] or run["started_at"]
    if current and current not in {a["number"] for a in attempts} and began is not None:
        ended = run["completed_at"]
        spans.append(
            Span(
                id=f"{run['id']}/attempt/{current}",
                kind="attempt",
                name=f"attempt {current}",
                start=_dt(began),
                end=_maybe_dt(ended),
                status=run_span_status(run["status"]) if ended is not None else "open",
                attributes={
                    "number": current,
                    "status": run["status"],
                    "worker_id": run["worker_id"],
                },
            )
        )
    return spans


def _call_span(run_id: str, entry: Row, now: float) -> Span:
    """The span of one journaled durable call."""
    key: str = entry["key"]
    head, _, _ = key.rpartition("#")
    call, _, name = head.partition(":")
    kind: SpanKind = "trigger" if call in _TRIGGER_KINDS else _CALL_KINDS.get(call, "step")
    value = json.loads(entry["value"]) if entry["value"] else {}
    created = entry["created_at"]
    start, end, status = created, created, "ok"
    attributes: dict[str, Any] = {"key": key}
    if kind == "step" and call == "step":
        start = entry["started_at"] if entry["started_at"] is not None else created
    waitpoint = entry["waitpoint_id"]
    if waitpoint is not None:
        attributes["waitpoint_id"] = waitpoint
        wp_status, complete_at = entry["waitpoint_status"], entry["waitpoint_complete_at"]
        if entry["waitpoint_kind"] == "duration":
            # a short wait is slept in the process and its waitpoint marked done by a later tick,
            # so the duration's own end is the truth, not when the waitpoint was completed
            attributes["until"] = _dt(complete_at).isoformat()
            end, status = (complete_at, "ok") if complete_at <= now else (None, "open")
        elif wp_status == "PENDING":
            end, status = None, "open"
        else:
            end = entry["waitpoint_completed_at"]
            status = "ok" if wp_status == "COMPLETED" else "error"
    if call.startswith("token."):
        token_id = value.get("token_id") or value.get("id")
        if token_id:
            attributes["token_id"] = token_id
    if kind == "trigger":
        attributes["run_ids"] = _child_ids(entry)
        if value.get("batch_id"):
            attributes["batch_id"] = value["batch_id"]
    return Span(
        id=f"{run_id}/{key}",
        kind=kind,
        name=f"{call} {name}" if name else call,
        start=_dt(start),
        end=_maybe_dt(end),
        status=status,
        attributes=attributes,
    )


def _child_ids(entry: Row) -> list[str]:
    value = json.loads(entry["value"]) if entry["value"] else {}
    return [str(r["id"]) for r in value.get("runs") or ()]


def _child_span(row: Row) -> Span:
    return Span(
        id=row["id"],
        kind="run",
        name=row["task_id"],
        start=_dt(row["created_at"]),
        end=_maybe_dt(row["completed_at"]),
        status=run_span_status(row["status"]),
        attributes={
            "run_id": row["id"],
            "task_id": row["task_id"],
            "status": row["status"],
            "batch_id": row["batch_id"],
        },
    )


def _parent_of(at: float, attempts: list[Span], root: Span) -> Span:
    """The attempt that made a call journaled at `at`: the last one that began by then."""
    moment = _dt(at)
    started = [a for a in attempts if a.start <= moment]
    return started[-1] if started else (attempts[0] if attempts else root)


def _close_open_calls(span: Span, end: datetime, status: SpanStatus) -> None:
    """A run that ended ends every call still open in it (a wait it was canceled in). Child runs
    are runs of their own and keep their own state."""
    for child in span.children:
        if child.kind == "run":
            continue
        if child.end is None:
            child.end, child.status = end, status
        _close_open_calls(child, end, status)


def _sort(span: Span) -> None:
    span.children.sort(key=lambda s: s.start)
    for child in span.children:
        _sort(child)
