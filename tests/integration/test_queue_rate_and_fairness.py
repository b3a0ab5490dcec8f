"""Queue rate limits (a sliding window of starts, per concurrency key) and the round-robin of
concurrency keys, on both databases, through the engine's lease."""

from __future__ import annotations

import pytest

from conveyor.engine import Engine
from conveyor.errors import Conflict
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import Heartbeat
from tests.integration.conftest import held


def define(task_id: str, **queue) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=task_id, **queue),
        retry=RetryPolicy(max_attempts=1),
    )


@pytest.fixture
def env(engine: Engine):
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(env.id, "w1", "w1", [])
    return env


def lease(engine, env, capacity=100):
    engine.workers.heartbeat("w1", Heartbeat())
    return engine.workers.lease(env.id, "w1", capacity)


def finish(engine, ids):
    engine.workers.complete("w1", [held(engine, i, 1, "completed") for i in ids])


def test_a_rate_limit_holds_in_every_window_and_says_when_it_has_room(engine, env, clock):
    engine.workers.set_tasks(env.id, [define("calls", rate_limit={"limit": 3, "period": "10s"})])
    runs = [engine.tasks.trigger(env.id, "calls", {}, TriggerOptions()) for _ in range(8)]
    starts: list[float] = []
    for _ in range(50):  # 25 s of leases every half second
        reply = lease(engine, env)
        ids = [a.run_id for a in reply.attempts]
        starts += [clock()] * len(ids)
        if len(ids) < 3 and len(starts) < 8:
            assert reply.next_due is not None and reply.next_due > clock()
        finish(engine, ids)
        clock.advance(0.5)
    assert len(starts) == len(runs) == 8
    for at in starts:  # no window of 10 s holds more than 3 starts
        assert sum(1 for s in starts if at <= s < at + 10) <= 3
    assert starts[3] - starts[0] >= 10  # and the fourth waited for the window
    queue = engine.queues.get(env.id, "calls")
    assert queue.rate_limit is not None and queue.rate_limit.limit == 3
    assert queue.rate_limit.seconds == 10 and queue.rate_used >= 1


def test_a_rate_limit_counts_each_concurrency_key_apart(engine, env):
    engine.workers.set_tasks(env.id, [define("calls", rate_limit={"limit": 2, "period": 60})])
    for key in ["a", "a", "a", "b", "b", "b"]:
        engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(concurrency_key=key))
    got = lease(engine, env).attempts
    assert sorted(a.concurrency_key for a in got) == ["a", "a", "b", "b"]
    assert lease(engine, env).attempts == []


def test_a_trigger_cannot_change_a_queues_rate_limit(engine, env):
    engine.workers.set_tasks(env.id, [define("calls", rate_limit={"limit": 2, "period": 60})])
    other = QueueSpec(name="calls", rate_limit={"limit": 5, "period": 60})
    with pytest.raises(Conflict, match="rate limit"):
        engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=other))
    same = QueueSpec(name="calls", rate_limit={"limit": 2, "period": "1m"})
    engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=same))


def test_a_trigger_cannot_change_a_queues_weights(engine, env):
    engine.workers.set_tasks(env.id, [define("calls")])
    weighted = QueueSpec(name="calls", weights={"vip": 3})
    with pytest.raises(Conflict, match="no weights, and a trigger cannot change the weights"):
        engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=weighted))
    # a queue a trigger makes takes its weights; the same weights again are fine, others are not
    made = QueueSpec(name="tenants-by-trigger", weights={"vip": 3})
    engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=made))
    engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=made))
    assert engine.queues.get(env.id, "tenants-by-trigger").weights == {"vip": 3}
    other = QueueSpec(name="tenants-by-trigger", weights={"vip": 5})
    with pytest.raises(Conflict, match="weights"):
        engine.tasks.trigger(env.id, "calls", {}, TriggerOptions(queue=other))


def test_a_small_tenant_waits_at_most_one_turn_behind_a_large_backlog(engine, env):
    engine.workers.set_tasks(env.id, [define("tenants")])
    for _ in range(300):
        engine.tasks.trigger(env.id, "tenants", {}, TriggerOptions(concurrency_key="big"))
    first = [a.run_id for a in lease(engine, env, capacity=1).attempts]
    small = engine.tasks.trigger(env.id, "tenants", {}, TriggerOptions(concurrency_key="small"))
    finish(engine, first)
    # one slot frees at a time: the small tenant's run takes the next one
    assert [a.run_id for a in lease(engine, env, capacity=1).attempts] == [small.id]


def test_keys_take_turns_in_proportion_to_their_weights(engine, env):
    engine.workers.set_tasks(env.id, [define("tenants", weights={"gold": 3})])
    for key in ["plain"] * 50 + ["gold"] * 50 + ["other"] * 50:
        engine.tasks.trigger(env.id, "tenants", {}, TriggerOptions(concurrency_key=key))
    served: list[str] = []
    for _ in range(10):
        got = lease(engine, env, capacity=5).attempts
        served += [a.concurrency_key for a in got]
        finish(engine, [a.run_id for a in got])
    assert served.count("gold") == 30  # 3 turns for every 1 of the others
    assert served.count("plain") == 10 and served.count("other") == 10
