"""A lease under the environment's limit reads only what it may start: the round-robin of
concurrency keys hands out as many turns as the environment has free slots, not the worker's
whole capacity (one query per key it reaches), and the keys still take turns."""

from __future__ import annotations

import pytest

from conveyor.engine import Engine, admission
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import Heartbeat
from tests.integration.conftest import ManualClock, held


def test_a_lease_reads_turns_for_the_free_slots_of_the_environment_only(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.environments.set_limit(env.id, 4)
    engine.workers.register(env.id, "w1", "w1", [])
    task = TaskDefinition(
        id="tenants",
        queue=QueueSpec(name="tenants", concurrency_limit=4),
        retry=RetryPolicy(max_attempts=1),
    )
    engine.workers.set_tasks(env.id, [task])
    keys = [f"k{i:02d}" for i in range(30)]
    for key in keys:
        options = TriggerOptions(concurrency_key=key)
        engine.tasks.batch_trigger(env.id, [("tenants", {}, options)] * 3)
        clock.advance(0.001)  # each key's runs queued after the previous key's
    slots: list[int] = []
    real = admission.round_robin

    def spy(heads, **kw):  # type: ignore[no-untyped-def]
        slots.append(kw["slots"])
        return real(heads, **kw)

    monkeypatch.setattr(admission, "round_robin", spy)
    served: list[str | None] = []
    for _ in range(15):
        engine.workers.heartbeat("w1", Heartbeat())
        got = engine.workers.lease(env.id, "w1", 500).attempts
        assert len(got) == 4
        served += [a.concurrency_key for a in got]
        engine.workers.complete("w1", [held(engine, a.run_id, 1, "completed") for a in got])
    assert slots and max(slots) == 4  # the environment's free slots, not the capacity of 500
    # every key had its first turn before any key its second, in the order they were queued
    assert served[:30] == keys and sorted(served[30:]) == keys
