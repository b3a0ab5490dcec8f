"""A durable `wait.for_` lasts its duration on the engine's clock, whatever the clock of the
worker that asked for it: a worker minutes ahead must not stretch a 9 s wait to minutes, nor a
worker behind end it at once. Both databases."""

from __future__ import annotations

import pytest

from conveyor.engine import Engine, Environment
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition
from conveyor.protocol import Heartbeat, WaitUntilCall
from tests.integration.conftest import ManualClock

TASKS = [
    TaskDefinition(id="waiter", queue=QueueSpec(name="waiter"), retry=RetryPolicy(max_attempts=1))
]


@pytest.fixture
def env(engine: Engine) -> Environment:
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(env.id, "w1", "w1", TASKS)
    return env


@pytest.mark.parametrize("skew", [300.0, -300.0])
def test_a_wait_for_lasts_its_seconds_on_the_engines_clock(
    engine: Engine, env: Environment, clock: ManualClock, skew: float
) -> None:
    engine.tasks.trigger(env.id, "waiter", {})
    engine.workers.heartbeat("w1", Heartbeat())
    (spec,) = engine.workers.lease(env.id, "w1", 1).attempts
    worker_now = clock.now + skew  # what the skewed worker's wall clock reads
    answer = engine.durable.call(
        env.id,
        spec.run_id,
        WaitUntilCall("wait.for#1", worker_now + 9, seconds=9),
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
    engine.tasks.trigger(env.id, "waiter", {})
    engine.workers.heartbeat("w1", Heartbeat())
    (spec,) = engine.workers.lease(env.id, "w1", 1).attempts
    answer = engine.durable.call(
        env.id,
        spec.run_id,
        WaitUntilCall("wait.until#1", clock.now + 60),
        worker_id="w1",
        fence=spec.fence,
    )
    assert answer["waitpoint"]["complete_at"] == pytest.approx(clock.now + 60)
    assert answer["waitpoint"]["remaining"] == pytest.approx(60)
