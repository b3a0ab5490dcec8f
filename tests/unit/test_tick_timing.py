"""When the platform's tick loop ticks again: at the next due time the tick named (a fire time,
a delayed run), at once when that time came while the tick ran, and after the regular interval
when nothing is due soon or a time long past still waits on something else."""

from __future__ import annotations

import time

import pytest

from conveyor.platform.serving import TICK_INTERVAL, until_due


def test_nothing_due_waits_the_regular_interval() -> None:
    assert until_due(None, time.time()) == TICK_INTERVAL


def test_a_time_soon_is_slept_to_and_a_time_later_waits_the_interval() -> None:
    now = time.time()
    assert until_due(now + TICK_INTERVAL / 4, now) == pytest.approx(TICK_INTERVAL / 4, abs=0.01)
    assert until_due(now + 60, now) == TICK_INTERVAL


def test_a_time_that_came_while_the_tick_ran_is_ticked_at_once() -> None:
    started = time.time() - 0.5  # a long tick: a minute's runs of 10,000 schedules, say
    assert until_due(started + 0.2, started) == 0.0


def test_a_time_already_past_when_the_tick_began_does_not_spin_the_loop() -> None:
    started = time.time()
    assert until_due(started - 30, started) == TICK_INTERVAL
