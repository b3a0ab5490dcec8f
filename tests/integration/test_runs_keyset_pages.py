"""engine.runs.page, the dashboard's run list: keyset pages (a run id as cursor, never an
OFFSET) that walk every run exactly once older-ward and back newer-ward, with filters, on
SQLite and PostgreSQL. Its speed at 100,000 runs is bench/dashboard_pages.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.errors import InvalidRequest
from conveyor.models import TriggerOptions

if TYPE_CHECKING:
    from conftest import Backend


def make_runs(backend: Backend, count: int) -> list[str]:
    """`count` runs, one trigger each (the test clock moves on between them, so ids follow
    creation order); every third is of task "other" and tagged "third"."""
    return [
        backend.engine.tasks.trigger(
            backend.env.id,
            "hello" if i % 3 else "other",
            {"i": i},
            TriggerOptions(tags=["third"] if i % 3 == 0 else []),
        ).id
        for i in range(count)
    ]


def test_pages_walk_every_run_once_both_ways(backend: Backend) -> None:
    made = make_runs(backend, 47)
    newest_first = list(reversed(made))
    pages = []
    page = backend.engine.runs.page(backend.env.id, limit=10)
    assert page.newer is None
    while True:
        pages.append([r.id for r in page.runs])
        if page.older is None:
            break
        page = backend.engine.runs.page(backend.env.id, limit=10, older_than=page.older)
        assert page.newer == page.runs[0].id
    assert [run_id for chunk in pages for run_id in chunk] == newest_first
    assert [len(chunk) for chunk in pages] == [10, 10, 10, 10, 7]

    back = []
    while page.newer is not None:
        page = backend.engine.runs.page(backend.env.id, limit=10, newer_than=page.newer)
        back.append([r.id for r in page.runs])
    assert back[-1] == pages[0]  # walking back ends on the first page, full
    assert page.newer is None
    assert back[:-1] == pages[1:-1][::-1]


def test_filters_hold_across_pages(backend: Backend) -> None:
    made = make_runs(backend, 30)
    others = [run_id for i, run_id in enumerate(made) if i % 3 == 0]
    seen: list[str] = []
    cursor = None
    while True:
        page = backend.engine.runs.page(
            backend.env.id, task_id="other", tag="third", limit=4, older_than=cursor
        )
        seen += [r.id for r in page.runs]
        cursor = page.older
        if cursor is None:
            break
    assert seen == list(reversed(others))
    queued = backend.engine.runs.page(backend.env.id, statuses=["QUEUED"], limit=100).runs
    assert len(queued) == 30
    assert (
        backend.engine.runs.page(backend.env.id, statuses=["FAILED", "CRASHED"], limit=100).runs
        == []
    )


def test_bad_cursors_are_refused(backend: Backend) -> None:
    for cursor in ("1", "' OR 1=1"):
        with pytest.raises(InvalidRequest):
            backend.engine.runs.page(backend.env.id, older_than=cursor)
        with pytest.raises(InvalidRequest):
            backend.engine.runs.page(backend.env.id, newer_than=cursor)
