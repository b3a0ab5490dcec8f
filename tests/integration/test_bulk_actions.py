"""Bulk actions in the engine, on SQLite and PostgreSQL: a bulk cancel or replay acts on exactly
the runs that match its filters and were made by the time it was, once each, a chunk per
transaction, whatever interrupts it and however many servers tick."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from conveyor.engine import Engine
from conveyor.errors import Conflict, InvalidRequest
from conveyor.models import BulkFilters, RunStatus, TriggerOptions
from conveyor.store import open_store
from tests.integration.conftest import held
from tests.integration.test_engine import define, lease_ids


@pytest.fixture
def env(engine):
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(env.id, "w1", "w1", [define("plain"), define("other")])
    return env


def trigger(engine, env, task="plain", n=1, **options):
    return [
        engine.tasks.trigger(env.id, task, {"i": i}, TriggerOptions(**options)) for i in range(n)
    ]


def fail(engine, env, runs):
    """End `runs` (all queued) FAILED, as an attempt that aborted."""
    lease_ids(engine, env, capacity=len(runs) + 100)
    engine.workers.complete(
        "w1", [held(engine, r.id, 1, "aborted", error={"message": "x"}) for r in runs]
    )


def carry_out(engine, clock, action_id):
    """Tick the action's chunks until it has ended; the action then."""
    clock.advance(1)
    steps = 0
    while engine.bulk.step(action_id):
        steps += 1
        assert steps < 10_000
    with engine.store.read() as tx:
        row = tx.one("get_bulk_action", env_id=action_env[action_id], id=action_id)
    assert row is not None
    return engine.bulk.get(row["env_id"], action_id)


action_env: dict[str, str] = {}


def bulk(engine, env, kind, **filters):
    key = filters.pop("idempotency_key", None)
    action = engine.bulk.create(env.id, kind, BulkFilters(**filters), idempotency_key=key)
    action_env[action.id] = env.id
    return action


def statuses(engine, env, runs):
    return [engine.runs.get(env.id, r.id).status for r in runs]


def replays_of(engine, env):
    """How many replays each run has (replayed_from of every run of the environment)."""
    runs, cursor = [], None
    while True:
        page, cursor = engine.runs.list(env.id, limit=1000, cursor=cursor)
        runs += page
        if cursor is None:
            return Counter(r.replayed_from for r in runs if r.replayed_from)


def test_bulk_cancel_cancels_exactly_the_runs_matching_status_and_task(engine, env, clock):
    queued = trigger(engine, env, n=3)
    tagged = trigger(engine, env, n=2, tags=["vip"])
    other = trigger(engine, env, "other", n=2)
    delayed = trigger(engine, env, n=1, delay=3600)
    action = bulk(engine, env, "cancel", status=["QUEUED"], task="plain")
    assert action.status == "RUNNING" and action.total == 5
    done = carry_out(engine, clock, action.id)
    assert done.status == "COMPLETED" and (done.done, done.skipped, done.failed) == (5, 0, 0)
    assert set(statuses(engine, env, queued + tagged)) == {RunStatus.CANCELED}
    assert set(statuses(engine, env, other)) == {RunStatus.QUEUED}
    assert statuses(engine, env, delayed) == [RunStatus.DELAYED]

    by_tag = carry_out(engine, clock, bulk(engine, env, "cancel", tag="vip").id)
    assert by_tag.done == 0  # the vip runs had been canceled: a cancel sees unfinished runs only
    by_task = carry_out(engine, clock, bulk(engine, env, "cancel", task="other").id)
    assert by_task.done == 2 and set(statuses(engine, env, other)) == {RunStatus.CANCELED}
    assert statuses(engine, env, delayed) == [RunStatus.DELAYED]


def test_a_filter_that_matches_nothing_completes_with_nothing_done(engine, env, clock):
    action = bulk(engine, env, "replay", task="nobody")
    assert action.total == 0
    done = carry_out(engine, clock, action.id)
    assert done.status == "COMPLETED" and done.processed == 0 and done.chunks == 1


def test_no_filter_at_all_is_refused_unless_all_is_said(engine, env, clock):
    queued = trigger(engine, env, n=2)
    with pytest.raises(InvalidRequest, match="at least one filter"):
        bulk(engine, env, "cancel")
    with pytest.raises(InvalidRequest, match="cannot be canceled"):
        bulk(engine, env, "cancel", status="FAILED,COMPLETED")
    done = carry_out(engine, clock, bulk(engine, env, "cancel", all=True).id)
    assert done.done == 2 and set(statuses(engine, env, queued)) == {RunStatus.CANCELED}
    assert done.filters.all


def test_bulk_replay_makes_one_run_per_matching_run_and_never_replays_its_own(engine, env, clock):
    engine.bulk.chunk = 2  # several chunks, the replays of the first made before the last
    failed = trigger(engine, env, n=5)
    fail(engine, env, failed)
    completed = trigger(engine, env, "other", n=1)
    action = bulk(engine, env, "replay", task="plain")  # every status: replays would match
    clock.advance(0.5)
    later = trigger(engine, env, n=1)  # made after the action: not its business
    done = carry_out(engine, clock, action.id)
    assert (done.done, done.failed, done.total) == (5, 0, 5)
    assert done.chunks == 3
    assert replays_of(engine, env) == Counter({r.id: 1 for r in failed})
    assert later[0].id not in replays_of(engine, env) and completed[0].id not in replays_of(
        engine, env
    )


def test_the_same_idempotency_key_returns_the_same_action_and_does_nothing_twice(
    engine, env, clock
):
    failed = trigger(engine, env, n=3)
    fail(engine, env, failed)
    first = bulk(engine, env, "replay", status="FAILED", since="1h", idempotency_key="retry-friday")
    clock.advance(5)  # the same request a little later: its `since` means another time now
    again = bulk(engine, env, "replay", status="failed", since="1h", idempotency_key="retry-friday")
    assert again.id == first.id and again.is_cached and not first.is_cached
    carry_out(engine, clock, first.id)
    after = bulk(
        engine, env, "replay", status=["FAILED"], since=3600, idempotency_key="retry-friday"
    )
    assert after.id == first.id and after.status == "COMPLETED"
    carry_out(engine, clock, after.id)
    assert replays_of(engine, env) == Counter({r.id: 1 for r in failed})
    with pytest.raises(Conflict, match="other filters"):
        bulk(engine, env, "cancel", task="plain", idempotency_key="retry-friday")


def test_an_interrupted_action_resumes_at_its_cursor_and_handles_each_run_once(
    engine, env, clock, database, monkeypatch
):
    engine.bulk.chunk = 3
    failed = trigger(engine, env, n=10)
    fail(engine, env, failed)
    action = bulk(engine, env, "replay", status="FAILED")
    clock.advance(1)
    assert engine.bulk.step(action.id) and engine.bulk.step(action.id)
    assert engine.bulk.get(env.id, action.id).done == 6

    # the server dies in the middle of the third chunk: its transaction never commits
    transitions = engine.bulk._transitions
    made = 0
    original = transitions.create_runs

    def dies_on_the_second(*args, **kwargs):
        nonlocal made
        made += 1
        if made == 2:
            raise KeyboardInterrupt("kill -9")
        return original(*args, **kwargs)

    monkeypatch.setattr(transitions, "create_runs", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        engine.bulk.step(action.id)
    progress = engine.bulk.get(env.id, action.id)
    assert (progress.done, progress.chunks, progress.status) == (6, 2, "RUNNING")

    # another server over the same database carries it on from the cursor
    store = open_store(database)
    successor = Engine(store, clock=clock)
    successor.bulk.chunk = 3
    try:
        while successor.bulk.step(action.id):
            pass
        done = successor.bulk.get(env.id, action.id)
    finally:
        store.close()
    assert (done.status, done.done, done.chunks) == ("COMPLETED", 10, 4)
    assert replays_of(engine, env) == Counter({r.id: 1 for r in failed})


def test_a_chunk_that_takes_long_ends_early_and_the_next_goes_on_from_there(
    engine, env, clock, monkeypatch
):
    engine.bulk.chunk_seconds = 0.0  # every chunk is "long": one run each, the first always
    runs = trigger(engine, env, n=3)
    done = carry_out(engine, clock, bulk(engine, env, "cancel", task="plain").id)
    assert (done.done, done.chunks) == (3, 3)
    assert set(statuses(engine, env, runs)) == {RunStatus.CANCELED}


def test_a_stopped_action_leaves_the_runs_it_has_not_reached(engine, env, clock):
    engine.bulk.chunk = 2
    queued = trigger(engine, env, n=5)
    action = bulk(engine, env, "cancel", task="plain")
    clock.advance(1)
    assert engine.bulk.step(action.id)
    stopped = engine.bulk.stop(env.id, action.id)
    assert stopped.status == "CANCELED" and stopped.done == 2
    assert not engine.bulk.step(action.id)
    assert Counter(statuses(engine, env, queued)) == {
        RunStatus.CANCELED: 2,
        RunStatus.QUEUED: 3,
    }
    with pytest.raises(Conflict, match="already ended CANCELED"):
        engine.bulk.stop(env.id, action.id)


def test_a_cancel_skips_runs_that_ended_before_their_turn(engine, env, clock):
    engine.bulk.chunk = 2
    runs = trigger(engine, env, n=4)
    action = bulk(engine, env, "cancel", task="plain")
    engine.runs.cancel(env.id, runs[3].id)  # ended after the action was made
    done = carry_out(engine, clock, action.id)
    assert (done.done, done.skipped) == (3, 0)  # a cancel reads unfinished runs only
    assert set(statuses(engine, env, runs)) == {RunStatus.CANCELED}


def test_the_tick_carries_actions_out_and_says_when_it_is_next_due(engine, env, clock):
    trigger(engine, env, n=3)
    action = bulk(engine, env, "cancel", status="QUEUED")
    due = engine.tick()  # made at this very clock reading: its chunks wait for the clock
    assert due is not None and due > clock.now
    clock.advance(1)
    engine.tick()
    assert engine.bulk.get(env.id, action.id).status == "COMPLETED"
    assert [a.id for a in engine.bulk.list(env.id)] == [action.id]


def test_a_large_action_goes_a_chunk_per_transaction(engine, env, clock, database):
    if not database.startswith("postgresql"):
        pytest.skip("the large action runs on PostgreSQL")
    engine.bulk.chunk = 250
    engine.bulk.chunk_seconds = 600  # chunks of whole size however slow the machine
    n = 5_000  # 20 chunks; bench/bulk_cancel.py measures 100,000
    for start in range(0, n, 1000):
        engine.tasks.batch_trigger(
            env.id, [("plain", {"i": i}, TriggerOptions()) for i in range(start, start + 1000)]
        )
    action = bulk(engine, env, "cancel", task="plain")
    assert action.total == n
    clock.advance(1)
    seen = []
    while engine.bulk.step(action.id):
        progress = engine.bulk.get(env.id, action.id)
        seen.append((progress.chunks, progress.done))
    assert seen == [(i, 250 * i) for i in range(1, n // 250 + 1)]
    done = engine.bulk.get(env.id, action.id)
    assert (done.status, done.done, done.chunks) == ("COMPLETED", n, n // 250 + 1)


def test_two_servers_ticking_at_once_share_an_action_without_double_work(
    engine, env, clock, database
):
    if not database.startswith("postgresql"):
        pytest.skip("several servers write at once on PostgreSQL only")
    engine.bulk.chunk = 20
    failed = trigger(engine, env, n=300)
    fail(engine, env, failed)
    action = bulk(engine, env, "replay", status="FAILED")
    clock.advance(1)
    stores = [open_store(database) for _ in range(2)]
    servers = [Engine(store, clock=clock) for store in stores]
    for server in servers:
        server.bulk.chunk = 20
    errors = []

    def tick(server):
        try:
            for _ in range(200):
                server.bulk.advance(budget=0.05)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert not errors
    done = engine.bulk.get(env.id, action.id)
    assert (done.status, done.done, done.chunks) == ("COMPLETED", 300, 16)
    assert replays_of(engine, env) == Counter({r.id: 1 for r in failed})
