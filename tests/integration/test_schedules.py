"""Schedules on the engine, on SQLite and PostgreSQL, with a clock the test moves: fire times
exact to the second, runs made ahead and queued on their time, one run per (schedule, fire time)
whatever the number of engines and restarts, the catch-up and overlap policies, declarative
schedules following the code, and bad input refused naming the field."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.engine import Engine
from conveyor.engine.schedules import LOOKAHEAD, MISSED_AFTER
from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.models import (
    QueueSpec,
    RetryPolicy,
    RunStatus,
    ScheduledPayload,
    TaskDefinition,
    TaskSchedule,
)
from conveyor.protocol import Heartbeat
from conveyor.store import open_store
from tests.integration.conftest import ManualClock, held

# the manual clock starts at 1_800_000_000.0: 2027-01-15 08:00:00 UTC, a Friday
START = 1_800_000_000.0
MINUTE = 60.0


def scheduled(task_id: str, cron: str | None = None, **policy: Any) -> TaskDefinition:
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=f"task/{task_id}"),
        retry=RetryPolicy(max_attempts=1),
        payload_schema=ScheduledPayload.model_json_schema(),
        schedule=TaskSchedule(cron=cron, **policy),
    )


PLAIN = TaskDefinition(id="plain", queue=QueueSpec(name="task/plain"), retry=RetryPolicy())


def runs_of(engine: Engine, env_id: str, task_id: str) -> list[Any]:
    runs, _ = engine.runs.list(env_id, task_id=task_id, limit=1000)
    return sorted(runs, key=lambda r: r.payload["timestamp"])


def stamp(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def prod(engine: Engine) -> str:
    """A deployed-kind environment whose worker declares the tasks (fires need no live worker)."""
    env = engine.environments.ensure("proj_s", "prod", "prod")
    engine.workers.register(env.id, "w-1", "w-1", [scheduled("digest"), scheduled("other"), PLAIN])
    return env.id


def test_a_schedule_fires_once_per_time_and_its_run_is_queued_on_the_second(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    clock.advance(30)  # 08:00:30
    s = engine.schedules.create(prod, task="digest", cron="*/5 * * * *", external_id="user-42")
    first = START + 5 * MINUTE
    assert s.next_fire_at == stamp(first)
    assert s.upcoming == [stamp(first + i * 5 * MINUTE) for i in range(5)]
    assert s.type == "IMPERATIVE" and s.active and s.cron_description

    clock.now = first - LOOKAHEAD - 1
    engine.tick()
    assert runs_of(engine, prod, "digest") == []  # not yet within the lookahead

    clock.now = first - LOOKAHEAD / 2
    engine.tick()
    (run,) = runs_of(engine, prod, "digest")
    assert run.status == RunStatus.DELAYED and run.delayed_until == stamp(first)
    payload = ScheduledPayload.model_validate(run.payload)
    assert payload.timestamp == stamp(first) and payload.last_timestamp is None
    assert payload.schedule_id == s.id and payload.external_id == "user-42"
    assert payload.upcoming[0] == stamp(first + 5 * MINUTE) and len(payload.upcoming) == 5

    due = engine.tick()  # nothing new; says when the delayed run is due
    assert due == first
    clock.now = first
    engine.tick()
    assert engine.runs.get(prod, run.id).status == RunStatus.QUEUED

    clock.now = first + 5 * MINUTE - 1
    engine.tick()
    second = runs_of(engine, prod, "digest")[1]
    assert ScheduledPayload.model_validate(second.payload).last_timestamp == stamp(first)
    after = engine.schedules.retrieve(prod, s.id)
    assert after.last_fired_at == stamp(first + 5 * MINUTE)
    assert after.last_run_id == second.id
    assert [f.run_id for f in after.recent_fires or []] == [second.id, run.id]


def test_many_engines_racing_on_one_database_make_one_run_per_fire_time(
    database: str, engine: Engine, clock: ManualClock, prod: str
) -> None:
    for n in range(40):
        engine.schedules.create(prod, task="digest", cron="* * * * *", external_id=f"c{n}")
    others = []
    for _ in range(3):
        store = open_store(database)
        others.append(Engine(store, clock=clock))
    engines = [engine, *others]
    try:
        for minute in range(1, 4):
            clock.now = START + minute * MINUTE - 3
            barrier = threading.Barrier(len(engines))
            errors: list[BaseException] = []

            def tick(
                e: Engine,
                barrier: threading.Barrier = barrier,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    barrier.wait()
                    e.tick()
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=tick, args=(e,)) for e in engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
        runs = runs_of(engine, prod, "digest")
        per = {(r.payload["schedule_id"], r.payload["timestamp"]) for r in runs}
        assert len(runs) == len(per) == 40 * 3
    finally:
        for e in others:
            e.store.close()


def test_a_restarted_engine_goes_on_where_the_last_one_stopped(
    database: str, engine: Engine, clock: ManualClock, prod: str
) -> None:
    engine.schedules.create(prod, task="digest", cron="* * * * *")
    clock.now = START + MINUTE - 2
    engine.tick()
    again = Engine(open_store(database), clock=clock)  # a new server process on the same database
    try:
        again.tick()
        clock.now = START + MINUTE
        again.tick()
        engine.tick()
    finally:
        again.store.close()
    (run,) = runs_of(engine, prod, "digest")
    assert run.status == RunStatus.QUEUED


def test_catch_up_latest_fires_once_for_the_most_recent_missed_time(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="digest", cron="*/10 * * * *", catch_up="latest")
    clock.now = START + 3 * 3600 + 125  # down three hours: 18 times missed
    engine.tick()
    (run,) = runs_of(engine, prod, "digest")
    latest = START + 3 * 3600 + 0  # 11:00:00, the last time at or before 11:02:05
    assert run.payload["timestamp"] == stamp(latest).isoformat().replace("+00:00", "Z")
    assert run.status == RunStatus.QUEUED
    after = engine.schedules.retrieve(prod, s.id)
    assert after.next_fire_at == stamp(latest + 10 * MINUTE)


def test_catch_up_none_skips_missed_times_but_fires_a_time_reached_late(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    engine.schedules.create(prod, task="digest", cron="*/10 * * * *", catch_up="none")
    clock.now = START + 3 * 3600 + 125
    engine.tick()
    assert runs_of(engine, prod, "digest") == []
    clock.now = START + 3 * 3600 + 10 * MINUTE + MISSED_AFTER / 2  # late, within the window
    engine.tick()
    assert len(runs_of(engine, prod, "digest")) == 1


def test_overlap_skip_makes_no_run_while_the_previous_one_runs(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="digest", cron="* * * * *", overlap="skip")
    clock.now = START + MINUTE - 5
    engine.tick()
    assert runs_of(engine, prod, "digest") == []  # skip decides at its time, not ahead
    clock.now = START + MINUTE
    engine.tick()
    (first,) = runs_of(engine, prod, "digest")
    engine.workers.register(prod, "w-2", "w-2", None)
    assert engine.workers.lease(prod, "w-2", 10).attempts  # it starts, still runs at 08:02
    clock.now = START + 2 * MINUTE
    engine.tick()
    assert len(runs_of(engine, prod, "digest")) == 1
    fires = engine.schedules.retrieve(prod, s.id).recent_fires or []
    assert fires[0].outcome == "skipped" and first.id in (fires[0].message or "")
    engine.workers.complete(
        "w-2", [held(engine, first.id, 1, "completed", output_json="null")], env_id=prod
    )
    clock.now = START + 3 * MINUTE
    engine.tick()
    assert len(runs_of(engine, prod, "digest")) == 2


def test_deactivating_cancels_the_run_made_ahead_and_activating_fires_from_the_next_time(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="digest", cron="* * * * *")
    clock.now = START + MINUTE - 5
    engine.tick()
    (ahead,) = runs_of(engine, prod, "digest")
    off = engine.schedules.deactivate(prod, s.id)
    assert not off.active and off.next_fire_at is None and off.upcoming == []
    assert engine.runs.get(prod, ahead.id).status == RunStatus.CANCELED
    clock.now = START + 5 * MINUTE
    engine.tick()
    assert len(runs_of(engine, prod, "digest")) == 1
    on = engine.schedules.activate(prod, s.id)
    assert on.next_fire_at == stamp(START + 6 * MINUTE)  # the time passed is not caught up


def test_updating_the_cron_moves_the_next_time_and_cancels_a_run_made_for_the_old_one(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="digest", cron="* * * * *")
    clock.now = START + MINUTE - 5
    engine.tick()
    (ahead,) = runs_of(engine, prod, "digest")
    moved = engine.schedules.update(prod, s.id, cron="0 9 * * *", timezone="Europe/Paris")
    # 08:00:55 UTC is 09:00:55 in Paris: the next 09:00 there is tomorrow, 08:00 UTC
    assert moved.next_fire_at == stamp(START + 86400)
    assert engine.runs.get(prod, ahead.id).status == RunStatus.CANCELED
    kept = engine.schedules.update(prod, s.id, external_id="team-7")
    assert kept.next_fire_at == moved.next_fire_at and kept.external_id == "team-7"


def test_a_deduplication_key_makes_create_idempotent(engine: Engine, prod: str) -> None:
    a = engine.schedules.create(prod, task="digest", cron="0 9 * * 1", deduplication_key="u42")
    b = engine.schedules.create(
        prod, task="digest", cron="0 10 * * 1", deduplication_key="u42", external_id="user-42"
    )
    assert a.id == b.id and b.cron == "0 10 * * 1" and b.external_id == "user-42"
    page, _ = engine.schedules.page(prod)
    assert [s.id for s in page] == [a.id]


def test_thousands_of_schedules_page_by_keyset_with_filters(engine: Engine, prod: str) -> None:
    made = [
        engine.schedules.create(
            prod, task="digest" if n % 2 else "other", cron="0 9 * * *", external_id=f"c{n % 7}"
        ).id
        for n in range(1200)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = engine.schedules.page(prod, limit=500, cursor=cursor)
        seen += [s.id for s in page]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    assert len(engine.schedules.list(prod, task="other")) == 600
    found = engine.schedules.list(prod, task="digest", external_id="c3")
    assert found and all(s.task == "digest" and s.external_id == "c3" for s in found)
    assert engine.schedules.list(prod, active=False) == []


def test_declarative_schedules_follow_the_code(engine: Engine, clock: ManualClock) -> None:
    env = engine.environments.ensure("proj_s", "staging", "staging")
    engine.workers.register(env.id, "w-1", "w-1", [scheduled("report", "0 6 * * *"), PLAIN])
    (s,) = engine.schedules.list(env.id)
    assert (s.type, s.task, s.cron, s.timezone) == ("DECLARATIVE", "report", "0 6 * * *", "UTC")
    with pytest.raises(Conflict, match="declared in the code"):
        engine.schedules.update(env.id, s.id, cron="0 7 * * *")
    with pytest.raises(Conflict, match="declared in the code"):
        engine.schedules.delete(env.id, s.id)
    engine.schedules.deactivate(env.id, s.id)  # an incident: stop it without a deploy

    engine.workers.set_tasks(env.id, [scheduled("report", "@hourly", timezone="Asia/Kolkata")])
    (changed,) = engine.schedules.list(env.id)
    assert changed.id == s.id and changed.cron == "0 * * * *"
    assert changed.timezone == "Asia/Kolkata" and not changed.active  # kept deactivated

    engine.workers.set_tasks(env.id, [scheduled("report"), PLAIN])  # no cron: imperative only
    assert engine.schedules.list(env.id) == []


def test_a_dev_environment_fires_only_while_a_worker_is_alive_and_does_not_catch_up(
    engine: Engine, clock: ManualClock
) -> None:
    env = engine.environments.ensure("proj_s", "dev", "dev")
    engine.workers.register(env.id, "dev-1", "dev-1", [scheduled("report", "* * * * *")])
    clock.now = START + MINUTE
    engine.workers.heartbeat("dev-1", Heartbeat())
    engine.tick()
    assert len(runs_of(engine, env.id, "report")) == 1
    clock.now = START + 2 * MINUTE  # the worker went silent (a laptop put to sleep)
    engine.tick()
    assert len(runs_of(engine, env.id, "report")) == 1
    engine.workers.stopped("dev-1")  # `conveyor dev` stops
    clock.now = START + 30 * MINUTE
    engine.tick()
    assert len(runs_of(engine, env.id, "report")) == 1
    engine.workers.register(env.id, "dev-2", "dev-2", [scheduled("report", "* * * * *")])
    (s,) = engine.schedules.list(env.id)
    assert s.next_fire_at == stamp(START + 31 * MINUTE)  # from now on; the half hour is not run
    clock.now = START + 31 * MINUTE
    engine.workers.heartbeat("dev-2", Heartbeat())
    engine.tick()
    assert len(runs_of(engine, env.id, "report")) == 2


def test_a_fire_of_a_task_no_longer_defined_is_recorded_as_an_error(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="other", cron="* * * * *")
    engine.workers.set_tasks(prod, [scheduled("digest"), PLAIN])
    clock.now = START + MINUTE
    engine.tick()
    assert runs_of(engine, prod, "other") == []
    (fire,) = engine.schedules.retrieve(prod, s.id).recent_fires or []
    assert fire.outcome == "error" and "not defined" in (fire.message or "")
    assert engine.schedules.retrieve(prod, s.id).next_fire_at == stamp(START + 2 * MINUTE)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"cron": "61 * * * *"}, InvalidRequest, "cron: bad minute field '61'"),
        ({"cron": "0 6 * *"}, InvalidRequest, "cron: '0 6 \\* \\*' has 4 fields"),
        ({"cron": "0 0 6 * * *"}, InvalidRequest, "seconds are not supported"),
        ({"cron": "@fortnightly"}, InvalidRequest, "cron: unknown shorthand"),
        ({"timezone": "Mars/Olympus"}, InvalidRequest, "timezone: unknown time zone"),
        ({"task": "nope"}, NotFound, "task: 'nope' is not defined"),
        ({"task": "plain"}, InvalidRequest, "task: 'plain' is not a scheduled task"),
        ({"catch_up": "all"}, InvalidRequest, "catch_up: must be one of latest, none"),
        ({"overlap": "queue"}, InvalidRequest, "overlap: must be one of allow, skip"),
        ({"external_id": ""}, InvalidRequest, "external_id: must be text"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    engine: Engine, prod: str, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    settings = {"task": "digest", "cron": "0 9 * * *", **fields}
    with pytest.raises(error, match=message):
        engine.schedules.create(prod, **settings)
    assert engine.schedules.list(prod) == []


def test_a_deploy_brings_its_declarative_schedules_and_a_rollback_takes_them_back(
    engine: Engine, clock: ManualClock
) -> None:
    from tests.integration.test_deployments import BUNDLE, LOCK

    env = engine.environments.ensure("proj_s", "staging", "staging")

    def deploy(*tasks: TaskDefinition) -> str:
        made = engine.deployments.deploy(env.id, list(tasks), BUNDLE, lock_sha256=LOCK)
        return made.version

    first = deploy(PLAIN)
    assert engine.schedules.list(env.id) == []
    deploy(PLAIN, scheduled("report", "0 6 * * *", timezone="Europe/Paris"))
    (s,) = engine.schedules.list(env.id)
    assert (s.task, s.type, s.timezone) == ("report", "DECLARATIVE", "Europe/Paris")
    clock.now = START + 86400  # 2027-01-16 08:00 UTC; 06:00 Paris was 05:00 UTC
    engine.tick()
    assert len(runs_of(engine, env.id, "report")) == 1  # caught up: the latest time, once
    engine.deployments.promote(env.id, first)  # the rollback: the code has no schedule
    assert engine.schedules.list(env.id) == []


def test_dev_does_not_catch_up_an_imperative_schedule_either(
    engine: Engine, clock: ManualClock
) -> None:
    env = engine.environments.ensure("proj_s", "dev", "dev")
    engine.workers.register(env.id, "dev-1", "dev-1", [scheduled("digest")])
    engine.schedules.create(env.id, task="digest", cron="*/10 * * * *", catch_up="latest")
    engine.workers.stopped("dev-1")
    clock.now = START + 33 * MINUTE  # `conveyor dev` comes back at 08:33; 08:30 was missed
    engine.workers.register(env.id, "dev-2", "dev-2", [scheduled("digest")])
    engine.tick()
    assert runs_of(engine, env.id, "digest") == []
    clock.now = START + 40 * MINUTE
    engine.workers.heartbeat("dev-2", Heartbeat())
    engine.tick()
    (run,) = runs_of(engine, env.id, "digest")
    assert run.payload["timestamp"].startswith("2027-01-15T08:40:00")


def test_a_canceled_run_made_ahead_is_not_the_last_fire(
    engine: Engine, clock: ManualClock, prod: str
) -> None:
    s = engine.schedules.create(prod, task="digest", cron="* * * * *")
    clock.now = START + MINUTE
    engine.tick()
    (fired,) = runs_of(engine, prod, "digest")
    clock.now = START + 2 * MINUTE - 5
    engine.tick()  # the 08:02 run is made ahead
    off = engine.schedules.deactivate(prod, s.id)  # and canceled
    assert off.last_fired_at == stamp(START + MINUTE) and off.last_run_id == fired.id
    engine.schedules.activate(prod, s.id)
    clock.now = START + 3 * MINUTE
    engine.tick()
    latest = runs_of(engine, prod, "digest")[-1]
    assert latest.payload["last_timestamp"].startswith("2027-01-15T08:01:00")


def test_fires_without_a_run_are_kept_a_week(engine: Engine, clock: ManualClock, prod: str) -> None:
    s = engine.schedules.create(prod, task="other", cron="0 * * * *")
    engine.workers.set_tasks(prod, [scheduled("digest"), PLAIN])  # "other" is gone
    clock.now = START + 3600
    engine.tick()
    clock.now = START + 8 * 86400
    engine.tick()
    fires = engine.schedules.retrieve(prod, s.id).recent_fires or []
    assert [f.timestamp for f in fires] == [stamp(START + 8 * 86400)]
    assert fires[0].outcome == "error"
