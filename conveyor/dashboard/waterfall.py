"""A trace as the rows of a waterfall: one row per span, indented by depth, with its bar placed
on a time axis shared by the whole run.

    hello                 ████████████████████████████  4.1 s
      attempt 1           ████████████████████████████  4.0 s
        trigger_and_wait    ███████████████             2.2 s
          run double          ████████████              2.0 s   (a child run...)
            attempt 1          ██████████               1.9 s   (...with its own spans)
        wait.for                           ██████       1.0 s

Child runs are runs of their own; their spans are grafted under them from their own traces
(as many as the caller fetched). Pure: traces in, rows out; nothing here reads the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from conveyor.models import Span, Trace

MAX_ROWS = 2000


@dataclass(frozen=True, slots=True)
class Row:
    span: Span
    depth: int
    left: float  # percent of the axis where the bar starts
    width: float  # percent of the axis the bar covers
    seconds: float | None  # its duration; None while open
    run_id: str | None  # the run a row of kind "run" stands for (to link to its page)
    inherited: bool  # a span of a child run's own trace


@dataclass(frozen=True, slots=True)
class Waterfall:
    rows: list[Row]
    start: datetime
    end: datetime
    truncated: bool

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def child_run_ids(trace: Trace) -> list[str]:
    """The ids of the child runs a trace shows, in the order they appear."""
    found: list[str] = []

    def walk(span: Span) -> None:
        for child in span.children:
            if child.kind == "run":
                found.append(child.attributes.get("run_id") or child.id)
            else:
                walk(child)

    walk(trace.root)
    return found


def build(trace: Trace, children: Mapping[str, Trace], *, now: datetime) -> Waterfall:
    """The waterfall of `trace`, with the spans of the child runs in `children` (by run id)
    under their run rows. Open spans reach `now`."""
    flat: list[tuple[Span, int, bool]] = []
    truncated = trace.truncated

    def walk(span: Span, depth: int, inherited: bool) -> None:
        if len(flat) >= MAX_ROWS:
            return
        flat.append((span, depth, inherited))
        if span.kind == "run" and depth > 0:
            child = children.get(span.attributes.get("run_id") or span.id)
            for inner in (child.root.children if child else ()):
                walk(inner, depth + 1, True)
            return
        for inner in span.children:
            walk(inner, depth + 1, inherited)

    walk(trace.root, 0, False)
    if len(flat) >= MAX_ROWS:
        truncated = True
    start = min(span.start for span, _, _ in flat)
    end = max(span.end or now for span, _, _ in flat)
    axis = max((end - start).total_seconds(), 1e-6)
    rows = []
    for span, depth, inherited in flat:
        span_end = span.end or now
        left = (span.start - start).total_seconds() / axis * 100
        width = max((span_end - span.start).total_seconds(), 0.0) / axis * 100
        run_id = (span.attributes.get("run_id") or span.id) if span.kind == "run" else None
        rows.append(Row(span, depth, round(min(left, 100.0), 3), round(max(min(width, 100.0 - left), 0.3), 3),
                        None if span.end is None else max((span.end - span.start).total_seconds(), 0.0),
                        run_id, inherited))
    return Waterfall(rows, start, end, truncated)
