"""Debounce in the engine, on SQLite and PostgreSQL: triggers with one key make one run that
starts `delay` after the last of them (at most `max_delay` after the first), with the last
payload (trailing) or the first (leading); exact when triggers race. And the ttl of token
idempotency keys."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from conveyor.engine import Engine
from conveyor.errors import InvalidRequest
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition, TriggerOptions
from tests.integration.conftest import ManualClock

TASKS = [
    TaskDefinition(id=name, queue=QueueSpec(name=f"task/{name}"), retry=RetryPolicy())
    for name in ("digest", "other")
]


@pytest.fixture
def env(engine: Engine) -> str:
    environment = engine.environments.ensure("proj_d", "dev", "dev")
    engine.workers.register(environment.id, "w", "w", TASKS)
    return environment.id


def trigger(engine: Engine, env: str, payload: Any, task: str = "digest", **debounce: Any) -> Any:
    spec = {"key": "user-1", "delay": 5, **debounce}
    n = payload.get("n", 0) if isinstance(payload, dict) else 0
    options = TriggerOptions(debounce=spec, tags=[f"t{n}"], max_attempts=n + 1)
    return engine.tasks.trigger(env, task, payload, options)


def status(engine: Engine, env: str, run_id: str) -> RunStatus:
    return engine.runs.get(env, run_id).status


def test_triggers_gather_into_one_run_that_starts_after_the_last(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    first = trigger(engine, env, {"n": 1})
    assert first.status == RunStatus.DELAYED and not first.is_cached
    clock.advance(3)
    second = trigger(engine, env, {"n": 2})
    clock.advance(3)  # 6 s after the first: it would have started without the second
    engine.tick()
    third = trigger(engine, env, {"n": 3})
    assert first.id == second.id == third.id and third.is_cached
    assert status(engine, env, first.id) == RunStatus.DELAYED
    clock.advance(4.9)
    engine.tick()
    assert status(engine, env, first.id) == RunStatus.DELAYED
    clock.advance(0.2)  # 5 s after the last
    engine.tick()
    run = engine.runs.get(env, first.id)
    assert run.status == RunStatus.QUEUED and run.payload == {"n": 3}  # trailing: the last
    assert (run.tags, run.max_attempts) == (["t3"], 4)  # and its settings
    # the run has left the window: the next trigger starts a new one
    assert trigger(engine, env, {"n": 4}).id != first.id
    assert len(engine.runs.list(env)[0]) == 2


def test_leading_keeps_the_first_payload_and_max_delay_bounds_the_wait(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    first = trigger(engine, env, {"n": 0}, mode="leading", max_delay="8s")
    for n in range(1, 4):  # a trigger every 2 s would push it back forever
        clock.advance(2)
        engine.tick()
        assert trigger(engine, env, {"n": n}, mode="leading", max_delay="8s").id == first.id
    clock.advance(1.9)
    engine.tick()
    assert status(engine, env, first.id) == RunStatus.DELAYED
    clock.advance(0.1)  # 8 s after the first, 2 s after the last
    engine.tick()
    run = engine.runs.get(env, first.id)
    assert run.status == RunStatus.QUEUED and run.payload == {"n": 0}
    assert (run.tags, run.max_attempts) == (["t0"], 1)  # leading: the first's settings


def test_keys_are_per_task_and_a_batch_gathers_its_own_items(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    a, b = trigger(engine, env, {}), trigger(engine, env, {}, task="other")
    assert a.id != b.id
    assert trigger(engine, env, {}, key="user-2").id != a.id
    spec = {"key": "user-3", "delay": "10s"}
    batch = engine.tasks.batch_trigger(
        env,
        [("digest", {"n": n}, TriggerOptions(debounce=spec)) for n in range(3)],
    )
    assert len({r.id for r in batch.runs}) == 1
    clock.advance(10)
    engine.tick()
    assert engine.runs.get(env, batch.runs[0].id).payload == {"n": 2}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": "1m", "debounce": {"key": "k", "delay": 5}}, "give delay or debounce"),
        ({"debounce": {"key": "k"}}, "delay"),
        ({"debounce": {"key": "k", "delay": "soon"}}, "debounce.delay"),
        ({"debounce": {"key": "k", "delay": 5, "mode": "middle"}}, "mode"),
        ({"debounce": {"key": "", "delay": 5}}, "key"),
        ({"debounce": {"key": "k", "delay": 5, "max_delay": "0s"}}, "max_delay must be more"),
        ({"debounce": {"key": "k", "delay": 5, "max_delay": -1}}, "max_delay"),
    ],
)
def test_a_bad_debounce_is_refused_naming_it(
    engine: Engine, env: str, options: dict[str, Any], message: str
) -> None:
    from conveyor.models import dump_trigger_options

    with pytest.raises(InvalidRequest, match=message):
        dump_trigger_options(options)
    assert engine.runs.list(env)[0] == []


def test_racing_triggers_make_one_run(engine: Engine, env: str) -> None:
    barrier = threading.Barrier(4)
    ids: list[str] = []
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait()
            for n in range(10):
                ids.append(trigger(engine, env, {"n": n}).id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(ids)) == 1 and len(ids) == 40
    assert len(engine.runs.list(env)[0]) == 1


def test_a_token_key_holds_for_its_ttl_then_makes_a_new_token(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    """Token idempotency keys expire like run keys: 30 days by default, or the ttl given."""
    first = engine.waitpoints.create_token(env, idempotency_key="approve-1", idempotency_key_ttl=60)
    again = engine.waitpoints.create_token(env, idempotency_key="approve-1")
    assert again["id"] == first["id"]
    clock.advance(61)
    later = engine.waitpoints.create_token(env, idempotency_key="approve-1")
    assert later["id"] != first["id"]
    clock.advance(29 * 86400)  # the default holds 30 days
    assert engine.waitpoints.create_token(env, idempotency_key="approve-1")["id"] == later["id"]
    clock.advance(2 * 86400)
    assert engine.waitpoints.create_token(env, idempotency_key="approve-1")["id"] != later["id"]


def test_max_delay_bounds_the_first_trigger_too(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    run = trigger(engine, env, {"n": 0}, delay=60, max_delay=10)
    clock.advance(10)
    engine.tick()
    assert status(engine, env, run.id) == RunStatus.QUEUED  # not 60 s: at most max_delay


def test_a_task_without_a_deployed_version_cannot_be_debounced(engine: Engine) -> None:
    from conveyor.errors import Conflict

    prod = engine.environments.ensure("proj_d", "prod", "prod").id
    with pytest.raises(Conflict, match="no deployed version yet"):
        trigger(engine, prod, {"n": 0})
    assert engine.runs.list(prod)[0] == []


def test_a_key_given_with_a_later_trigger_finds_the_run_it_joined(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    first = trigger(engine, env, {"n": 0})
    spec = {"key": "user-1", "delay": 5}
    joined = engine.tasks.trigger(
        env, "digest", {"n": 1}, TriggerOptions(debounce=spec, idempotency_key="order-7")
    )
    assert joined.id == first.id
    clock.advance(6)
    engine.tick()  # the run started: the debounce key gathers no more
    again = engine.tasks.trigger(env, "digest", {}, TriggerOptions(idempotency_key="order-7"))
    assert again.id == first.id and again.is_cached  # the key holds it


def test_a_batch_where_a_debounced_item_brings_a_key_a_later_item_uses(
    engine: Engine, env: str
) -> None:
    spec = {"key": "user-9", "delay": 5}
    batch = engine.tasks.batch_trigger(
        env,
        [
            ("digest", {"n": 1}, TriggerOptions(debounce=spec)),
            ("digest", {"n": 2}, TriggerOptions(debounce=spec, idempotency_key="order-9")),
            ("digest", {"n": 3}, TriggerOptions(idempotency_key="order-9")),
        ],
    )
    assert len({r.id for r in batch.runs}) == 1  # one run, no second holder of the key
