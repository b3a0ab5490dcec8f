"""A durable `wait.for_` lasts its duration on the engine's clock, whatever the clock of the
worker that asked for it: a worker minutes ahead must not stretch a 9 s wait to minutes, nor a
worker behind end it at once. Both databases."""

from __future__ import annotations

import pytest

from conveyor.engine.engine import Engine, Environment
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition
from conveyor.protocol import Heartbeat
from tests.integration.conftest import ManualClock

TASKS = [
    TaskDefinition(id="waiter", queue=QueueSpec(name="waiter"), retry=RetryPolicy(max_attempts=1))
]


@pytest.fixture
def env(engine: Engine) -> Environment:
    env = engine.ensure_environment("proj", "dev", "dev")
    engine.register_worker(env.id, "w1", "w1", TASKS)
    return env


@pytest.mark.parametrize("skew", [300.0, -300.0])
def test_a_wait_for_lasts_its_seconds_on_the_engines_clock(
    engine: Engine, env: Environment, clock: ManualClock, skew: float
) -> None:
    engine.trigger(env.id, "waiter", {})
    engine.heartbeat("w1", Heartbeat())
    (spec,) = engine.lease(env.id, "w1", 1).attempts
    worker_now = clock.now + skew  # what the skewed worker's wall clock reads
    answer = engine.run_call(
        env.id,
        spec.run_id,
        "wait_until",
        {"key": "wait.for#1", "until": worker_now + 9, "seconds": 9},
        worker_id="w1",
        fence=spec.fence,
    )
    waitpoint = answer["waitpoint"]
    assert waitpoint["status"] == "PENDING"
    assert waitpoint["complete_at"] == pytest.approx(clock.now + 9)
    assert waitpoint["remaining"] == pytest.approx(9)


def test_a_wait_until_keeps_its_moment(
    engine: Engine, env: Environment, clock: ManualClock
) -> None:
    engine.trigger(env.id, "waiter", {})
    engine.heartbeat("w1", Heartbeat())
    (spec,) = engine.lease(env.id, "w1", 1).attempts
    answer = engine.run_call(
        env.id,
        spec.run_id,
        "wait_until",
        {"key": "wait.until#1", "until": clock.now + 60},
        worker_id="w1",
        fence=spec.fence,
    )
    assert answer["waitpoint"]["complete_at"] == pytest.approx(clock.now + 60)
    assert answer["waitpoint"]["remaining"] == pytest.approx(60)
