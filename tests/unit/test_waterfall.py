"""The trace waterfall of a 200-child batch: the batch row starts folded with its rows hidden
under it, every parent row says how many rows it folds, and the axis has round labelled times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.dashboard import waterfall
from conveyor.models import Span, Trace

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def span(id: str, kind: str, start: float, end: float, children: list[Span] | None = None) -> Span:
    return Span(
        id=id,
        kind=kind,
        name=id,
        start=T0 + timedelta(seconds=start),
        end=T0 + timedelta(seconds=end),
        status="ok",
        attributes={"run_id": id} if kind == "run" else {},
        children=children or [],
    )


def test_a_big_batch_starts_folded_and_the_axis_is_labelled() -> None:
    runs = [span(f"run_{i:03d}", "run", 0.5, 3.5) for i in range(200)]
    one = span("run_one", "run", 0.1, 0.4)
    attempt = span(
        "attempt_1",
        "attempt",
        0.0,
        4.1,
        [span("trigger_1", "trigger", 0.1, 0.4, [one]), span("batch_1", "trigger", 0.5, 4.0, runs)],
    )
    trace = Trace(run_id="run_root", root=span("run_root", "run", 0.0, 4.1, [attempt]))
    built = waterfall.build(trace, {}, now=T0)

    rows = {row.span.id: row for row in built.rows}
    assert (
        rows["batch_1"].collapsed
        and rows["batch_1"].descendants == 200
        and not rows["batch_1"].hidden
    )
    assert all(rows[r.id].hidden for r in runs)
    assert (
        not rows["trigger_1"].collapsed
        and rows["trigger_1"].descendants == 1
        and not rows["run_one"].hidden
    )
    assert rows["attempt_1"].descendants == 203 and not rows["attempt_1"].collapsed
    assert rows["run_root"].descendants == 204
    assert sum(not row.hidden for row in built.rows) == 5  # 205 rows, 5 shown until unfolded

    assert built.step == 1.0
    assert built.ticks == [(round(i / 4.1 * 100, 3), float(i)) for i in range(5)]
    assert built.step_percent == round(100 / 4.1, 3)
