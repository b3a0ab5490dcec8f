"""A trace as the rows of a waterfall: one row per span, indented by depth, with its bar placed
on a time axis shared by the whole run.

    hello                 ████████████████████████████  4.1 s
      attempt 1           ████████████████████████████  4.0 s
        trigger_and_wait    ███████████████             2.2 s
          run double          ████████████              2.0 s   (a child run...)
            attempt 1          ██████████               1.9 s   (...with its own spans)
        wait.for                           ██████       1.0 s

Child runs are runs of their own; their spans are grafted under them from their own traces
(as many as the caller fetched). Each row knows how many rows sit under it, so the page can
fold it; a row with more than COLLAPSE_OVER rows right under it (a batch of 200 children)
starts folded. The axis is labelled at round times (`ticks`). Pure: traces in, rows out;
nothing here reads the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from conveyor.models import Span, Trace

MAX_ROWS = 2000
COLLAPSE_OVER = 20  # a row with more rows than this right under it starts folded
TICKS = 5  # about how many labelled times the axis has


@dataclass(frozen=True, slots=True)
class Row:
    span: Span
    depth: int
    left: float  # percent of the axis where the bar starts
    width: float  # percent of the axis the bar covers
    seconds: float | None  # its duration; None while open
    run_id: str | None  # the run a row of kind "run" stands for (to link to its page)
    inherited: bool  # a span of a child run's own trace
    descendants: int = 0  # rows under it (folded with it)
    collapsed: bool = False  # starts folded: more than COLLAPSE_OVER rows right under it
    hidden: bool = False  # under a row that starts folded


@dataclass(frozen=True, slots=True)
class Waterfall:
    rows: list[Row]
    start: datetime
    end: datetime
    truncated: bool

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    @property
    def step(self) -> float:
        """Seconds between two labelled times of the axis."""
        return tick_step(self.seconds)

    @property
    def step_percent(self) -> float:
        """The step as a percent of the axis (the spacing of the grid lines behind the bars)."""
        return round(self.step / max(self.seconds, 1e-6) * 100, 3)

    @property
    def ticks(self) -> list[tuple[float, float]]:
        """The labelled times of the axis: (percent of the axis, seconds since the start)."""
        axis, step = max(self.seconds, 1e-6), self.step
        return [
            (round(i * step / axis * 100, 3), i * step) for i in range(int(axis / step + 1e-9) + 1)
        ]


_CLOCK_STEPS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)


def tick_step(seconds: float) -> float:
    """1, 2 or 5 times a power of ten under half a minute; minutes and hours past it."""
    raw = max(seconds, 1e-6) / TICKS
    if raw > 20:
        return float(next((s for s in _CLOCK_STEPS if s >= raw), 86400 * math.ceil(raw / 86400)))
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * 0.999)


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
            for inner in child.root.children if child else ():
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
    descendants, direct = _family_sizes([depth for _, depth, _ in flat])
    rows = []
    folded_at: int | None = None  # depth of the row that starts folded and hides those under it
    for index, (span, depth, inherited) in enumerate(flat):
        if folded_at is not None and depth <= folded_at:
            folded_at = None
        hidden = folded_at is not None
        collapsed = direct[index] > COLLAPSE_OVER
        if collapsed and folded_at is None:
            folded_at = depth
        span_end = span.end or now
        left = (span.start - start).total_seconds() / axis * 100
        width = max((span_end - span.start).total_seconds(), 0.0) / axis * 100
        run_id = (span.attributes.get("run_id") or span.id) if span.kind == "run" else None
        rows.append(
            Row(
                span,
                depth,
                round(min(left, 100.0), 3),
                round(max(min(width, 100.0 - left), 0.3), 3),
                None if span.end is None else max((span.end - span.start).total_seconds(), 0.0),
                run_id,
                inherited,
                descendants[index],
                collapsed,
                hidden,
            )
        )
    return Waterfall(rows, start, end, truncated)


def _family_sizes(depths: list[int]) -> tuple[list[int], list[int]]:
    """For rows in tree order given by their depth: how many rows are under each, and how many
    right under it (one level down)."""
    descendants = [0] * len(depths)
    direct = [0] * len(depths)
    open_rows: list[int] = []  # indexes of the rows the current one is under
    for index, depth in enumerate(depths):
        while open_rows and depths[open_rows[-1]] >= depth:
            done = open_rows.pop()
            descendants[done] = index - done - 1
        if open_rows:
            direct[open_rows[-1]] += 1
        open_rows.append(index)
    for done in open_rows:
        descendants[done] = len(depths) - done - 1
    return descendants, direct
