"""The arithmetic of the fairness benchmark (bench/fairness_metrics.py): Jain's index, max-min
fair shares, counting starts in the window, first starts, and the small run behind a backlog."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "fairness_metrics.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fairness_metrics", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fm = _load()


def test_jain_is_one_when_equal_and_one_over_n_when_one_has_all() -> None:
    assert fm.jain([3, 3, 3, 3]) == pytest.approx(1.0)
    assert fm.jain([5, 0, 0, 0]) == pytest.approx(0.25)
    assert fm.jain([1, 2]) == pytest.approx(9 / 10)
    assert fm.jain([]) is None
    assert fm.jain([0, 0]) is None


def test_max_min_shares_fill_small_demands_and_split_the_rest() -> None:
    shares = fm.max_min_shares({"a": 1, "b": 10, "c": 100, "d": 100}, 51)
    assert shares == pytest.approx({"a": 1, "b": 10, "c": 20, "d": 20})
    # more room than demand: everyone gets its demand
    assert fm.max_min_shares({"a": 2, "b": 3}, 100) == pytest.approx({"a": 2, "b": 3})
    assert sum(fm.max_min_shares(fm.demands_for(100, [200, 50, 10, 2, 1]), 2630).values()) == (
        pytest.approx(2630)
    )


def test_window_counts_only_the_first_starts() -> None:
    starts = fm.ordered([(3.0, "b"), (1.0, "a"), (2.0, "a"), (4.0, "c")])
    assert fm.window_counts(starts, 3) == {"a": 2, "b": 1}


def test_round_robin_is_fair_and_fifo_is_not() -> None:
    demands = {"a": 6, "b": 6, "c": 1}
    rr = fm.ordered(enumerate(["a", "b", "c", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]))
    fifo = fm.ordered(enumerate(["a"] * 6 + ["b"] * 6 + ["c"]))
    fair = fm.window_figures([(float(t), k) for t, k in rr], demands, 7)  # shares: c 1, a 3, b 3
    assert fair["jain_max_min"] == pytest.approx(1.0)
    assert fair["min_share"] == fair["max_share"] == pytest.approx(1.0)
    unfair = fm.window_figures([(float(t), k) for t, k in fifo], demands, 7)
    # a: 6 / 3, b: 1 / 3, c: 0 / 1
    assert unfair["jain_max_min"] == pytest.approx((2 + 1 / 3) ** 2 / (3 * (4 + 1 / 9)))
    assert unfair["tenants_served_in_window"] == 2


def test_first_starts_count_what_came_before() -> None:
    starts = fm.ordered([(10.0, "a"), (10.5, "a"), (11.0, "b")])
    assert fm.first_starts(starts, ["a", "b", "z"]) == {"a": (0.0, 0), "b": (1.0, 2)}


def test_behind_backlog_splits_the_big_starts_around_the_trigger() -> None:
    big = [1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0]
    out = fm.behind_backlog(big, small_start=4.5, triggered=3.0, queued=3.8, total=10)
    assert out["big_started_before_trigger"] == 2
    assert out["big_queued_at_trigger"] == 8
    assert out["big_racing_trigger"] == 2  # 3.0 and 3.5
    assert out["big_ahead"] == 1  # 4.0
    assert out["wait_ms"] == pytest.approx(1500)
