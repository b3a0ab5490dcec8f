"""A batch's own idempotency key, in the engine, on SQLite and PostgreSQL: a second batch call
with the key answers the same batch (its id and its runs, cached) and makes no run; the key
holds until its TTL, a reset, or a run of the batch failing (then a new batch keeps the runs
that did not fail and triggers the failed ones again). Also inside a run (durable calls), and
exact when two servers race on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.engine import Engine
from conveyor.errors import Conflict, InvalidRequest
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition, TriggerOptions
from conveyor.protocol import Heartbeat, TriggerCall, TriggerItem
from conveyor.store import open_store
from tests.databases import postgres_schema
from tests.integration.conftest import ManualClock, held, holder

TASKS = [
    TaskDefinition(id=name, queue=QueueSpec(name=f"task/{name}"), retry=RetryPolicy(max_attempts=1))
    for name in ("resize", "notify", "parent")
]


@pytest.fixture
def env(engine: Engine) -> str:
    environment = engine.environments.ensure("proj_b", "dev", "dev")
    engine.workers.register(environment.id, "w1", "w1", TASKS)
    return environment.id


def items(*payloads: Any, task: str = "resize") -> list[tuple[str, Any, TriggerOptions]]:
    return [(task, p, TriggerOptions()) for p in payloads]


def run_count(engine: Engine, env: str) -> int:
    return len(engine.runs.list(env, limit=1000)[0])


def finish(engine: Engine, env: str, outcomes: dict[str, str]) -> None:
    """Lease every queued run and end those of `outcomes` (run id -> "completed"|"aborted")."""
    engine.workers.heartbeat("w1", Heartbeat())
    engine.workers.lease(env, "w1", 100)
    engine.workers.complete(
        "w1",
        [
            held(engine, run_id, 1, kind, output_json="1", error={"message": "no"})
            for run_id, kind in outcomes.items()
        ],
    )


def test_the_same_key_returns_the_same_batch_and_makes_no_run(engine: Engine, env: str) -> None:
    first = engine.tasks.batch_trigger(env, items({"n": 1}, {"n": 2}), idempotency_key="import-1")
    assert not first.is_cached and first.batch_id.startswith("batch_")
    again = engine.tasks.batch_trigger(env, items({"n": 9}, {"n": 8}), idempotency_key="import-1")
    assert again.is_cached and again.batch_id == first.batch_id
    assert [r.id for r in again.runs] == [r.id for r in first.runs]
    assert all(r.is_cached for r in again.runs) and not any(r.is_cached for r in first.runs)
    assert run_count(engine, env) == 2
    assert engine.runs.get(env, first.runs[0].id).payload == {"n": 1}  # the first call's
    other = engine.tasks.batch_trigger(env, items({"n": 1}, {"n": 2}), idempotency_key="import-2")
    assert other.batch_id != first.batch_id and run_count(engine, env) == 4


def test_a_batch_of_several_tasks_keeps_its_key_too(engine: Engine, env: str) -> None:
    mixed = [("resize", {}, TriggerOptions()), ("notify", {}, TriggerOptions())]
    first = engine.tasks.batch_trigger(env, mixed, idempotency_key="k")
    again = engine.tasks.batch_trigger(env, mixed, idempotency_key="k")
    assert again.is_cached and [r.task_id for r in again.runs] == ["resize", "notify"]
    assert [r.id for r in again.runs] == [r.id for r in first.runs]


def test_the_key_holds_until_its_ttl(engine: Engine, env: str, clock: ManualClock) -> None:
    first = engine.tasks.batch_trigger(
        env, items({}), idempotency_key="k", idempotency_key_ttl="1h"
    )
    clock.advance(3599)
    assert engine.tasks.batch_trigger(env, items({}), idempotency_key="k").is_cached
    clock.advance(2)
    later = engine.tasks.batch_trigger(env, items({}), idempotency_key="k")
    assert not later.is_cached and later.batch_id != first.batch_id
    assert later.runs[0].id != first.runs[0].id
    assert engine.tasks.batch_trigger(env, items({}), idempotency_key="k").batch_id == (
        later.batch_id
    )


def test_the_default_ttl_is_thirty_days(engine: Engine, env: str, clock: ManualClock) -> None:
    first = engine.tasks.batch_trigger(env, items({}), idempotency_key="k")
    clock.advance(30 * 86400 - 1)
    assert engine.tasks.batch_trigger(env, items({}), idempotency_key="k").is_cached
    clock.advance(2)
    assert engine.tasks.batch_trigger(env, items({}), idempotency_key="k").batch_id != (
        first.batch_id
    )


def test_a_failed_run_releases_the_key_and_the_next_call_redoes_only_what_failed(
    engine: Engine, env: str
) -> None:
    first = engine.tasks.batch_trigger(
        env, items({"n": 1}, {"n": 2}, {"n": 3}), idempotency_key="k"
    )
    done, failed, running = (r.id for r in first.runs)
    finish(engine, env, {done: "completed", failed: "aborted"})
    assert engine.runs.get(env, failed).status == RunStatus.FAILED
    again = engine.tasks.batch_trigger(
        env, items({"n": 1}, {"n": 20}, {"n": 3}), idempotency_key="k"
    )
    assert not again.is_cached and again.batch_id != first.batch_id
    assert again.runs[0].id == done and again.runs[2].id == running  # kept, cached
    assert again.runs[0].is_cached and again.runs[2].is_cached
    redo = again.runs[1]
    assert redo.id != failed and not redo.is_cached and redo.payload == {"n": 20}
    assert run_count(engine, env) == 4
    # the new batch holds the key now, as it is
    third = engine.tasks.batch_trigger(env, items({}, {}, {}), idempotency_key="k")
    assert third.is_cached and third.batch_id == again.batch_id
    assert [r.id for r in third.runs] == [done, redo.id, running]


def test_a_canceled_run_releases_the_key_too(engine: Engine, env: str) -> None:
    first = engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k")
    engine.runs.cancel(env, first.runs[1].id)
    again = engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k")
    assert again.batch_id != first.batch_id
    assert again.runs[0].id == first.runs[0].id and again.runs[1].id != first.runs[1].id


def test_a_completed_batch_keeps_its_key_and_reset_releases_it(engine: Engine, env: str) -> None:
    first = engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k")
    finish(engine, env, {r.id: "completed" for r in first.runs})
    assert engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k").is_cached
    assert engine.tasks.reset_batch_idempotency_key(env, "k") is True
    assert engine.tasks.reset_batch_idempotency_key(env, "k") is False
    fresh = engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k")
    assert not fresh.is_cached and fresh.batch_id != first.batch_id
    assert {r.id for r in fresh.runs}.isdisjoint(r.id for r in first.runs)


def test_a_key_given_to_other_items_is_a_conflict_naming_its_batch(
    engine: Engine, env: str
) -> None:
    first = engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="k")
    with pytest.raises(Conflict, match=f"{first.batch_id}.*2 runs.*3 items"):
        engine.tasks.batch_trigger(env, items({}, {}, {}), idempotency_key="k")
    with pytest.raises(Conflict, match=r"items\[1\] a run of 'resize'.*'notify'"):
        engine.tasks.batch_trigger(
            env,
            [("resize", {}, TriggerOptions()), ("notify", {}, TriggerOptions())],
            idempotency_key="k",
        )
    assert run_count(engine, env) == 2


def test_an_invalid_batch_claims_no_key(engine: Engine, env: str) -> None:
    with pytest.raises(Exception, match="not defined"):
        engine.tasks.batch_trigger(env, items({}, task="missing"), idempotency_key="k")
    made = engine.tasks.batch_trigger(env, items({}), idempotency_key="k")
    assert not made.is_cached and run_count(engine, env) == 1


@pytest.mark.parametrize(
    ("key", "ttl", "message"),
    [
        ("", None, "idempotency_key"),
        ("x" * 2049, None, "idempotency_key"),
        ("k", "soon", "idempotency_key_ttl"),
        ("k", -1, "idempotency_key_ttl"),
        (None, "later", "idempotency_key_ttl"),
    ],
)
def test_bad_keys_and_ttls_are_refused(
    engine: Engine, env: str, key: Any, ttl: Any, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        engine.tasks.batch_trigger(env, items({}), idempotency_key=key, idempotency_key_ttl=ttl)
    assert run_count(engine, env) == 0


def test_each_environment_has_its_own_keys(engine: Engine, env: str) -> None:
    other = engine.environments.ensure("proj_b", "staging", "staging").id
    engine.workers.register(other, "w2", "w2", TASKS)
    mine = engine.tasks.batch_trigger(env, items({}), idempotency_key="k")
    theirs = engine.tasks.batch_trigger(other, items({}), idempotency_key="k")
    assert not theirs.is_cached and theirs.batch_id != mine.batch_id


# -- inside a run ------------------------------------------------------------------------------


def durable_batch(
    engine: Engine, env: str, parent: str, journal_key: str, key: str, *, wait: bool = False
) -> dict[str, Any]:
    return engine.durable.call(  # type: ignore[no-any-return]
        env,
        parent,
        TriggerCall(
            journal_key,
            [TriggerItem("resize", {"n": 1}, {}), TriggerItem("resize", {"n": 2}, {})],
            wait=wait,
            batch=True,
            idempotency_key=key,
            idempotency_key_ttl=3600.0,
        ),
        **holder(engine, parent),
    )


def test_two_calls_of_a_run_with_one_key_make_one_batch(engine: Engine, env: str) -> None:
    parent = engine.tasks.trigger(env, "parent", {})
    engine.workers.heartbeat("w1", Heartbeat())
    engine.workers.lease(env, "w1", 1)
    first = durable_batch(engine, env, parent.id, "batch_trigger:resize#1", "run:abc")
    second = durable_batch(engine, env, parent.id, "batch_trigger:resize#2", "run:abc")
    assert second["batch_id"] == first["batch_id"] and second["is_cached"] is True
    assert [r["id"] for r in second["runs"]] == [r["id"] for r in first["runs"]]
    assert first["is_cached"] is False and run_count(engine, env) == 3  # the parent and two
    # a backend's batch with the same text is another key: the run's is scoped (made by the SDK)
    assert engine.tasks.batch_trigger(env, items({}, {}), idempotency_key="run:abc").is_cached


def test_a_replay_answers_from_the_journal_without_asking_the_key(engine: Engine, env: str) -> None:
    parent = engine.tasks.trigger(env, "parent", {})
    engine.workers.heartbeat("w1", Heartbeat())
    engine.workers.lease(env, "w1", 1)
    first = durable_batch(engine, env, parent.id, "batch_trigger:resize#1", "run:abc")
    assert engine.tasks.reset_batch_idempotency_key(env, "run:abc")
    replayed = durable_batch(engine, env, parent.id, "batch_trigger:resize#1", "run:abc")
    assert replayed["batch_id"] == first["batch_id"] and run_count(engine, env) == 3


# -- two servers racing ------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[list[Engine]]:
    with postgres_schema() as url:
        stores = [open_store(url) for _ in range(2)]
        stores[0].migrate()
        yield [Engine(store, worker_timeout=60) for store in stores]
        for store in stores:
            store.close()


def race(
    servers: list[Engine], env: str, key: str, calls: int
) -> list[tuple[str, list[str], bool]]:
    """`calls` batch calls with `key` at once, half on each server: (batch id, run ids, cached)."""
    barrier = threading.Barrier(calls)
    answers: list[tuple[str, list[str], bool]] = []
    errors: list[BaseException] = []

    def call(engine: Engine) -> None:
        barrier.wait()
        try:
            result = engine.tasks.batch_trigger(env, items({}, {}, {}), idempotency_key=key)
            answers.append((result.batch_id, [r.id for r in result.runs], result.is_cached))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(servers[i % 2],)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def test_calls_racing_on_two_servers_make_one_batch(servers: list[Engine]) -> None:
    env = servers[0].environments.ensure("proj_race", "dev", "dev").id
    servers[0].workers.register(env, "w1", "w1", TASKS)
    calls = 16
    for round_ in range(5):  # several rounds: each a fresh key all calls race for
        answers = race(servers, env, f"race-{round_}", calls)
        assert len({a[0] for a in answers}) == 1, answers
        assert len({tuple(a[1]) for a in answers}) == 1
        assert sorted(a[2] for a in answers) == [False] + [True] * (calls - 1)
    runs = servers[1].runs.list(env, limit=1000)[0]
    assert len(runs) == 5 * 3


def test_a_ttl_without_a_key_has_no_effect(engine: Engine, env: str) -> None:
    first = engine.tasks.batch_trigger(env, items({}), idempotency_key_ttl=60)
    second = engine.tasks.batch_trigger(env, items({}), idempotency_key_ttl="1m")
    assert first.batch_id != second.batch_id and run_count(engine, env) == 2
