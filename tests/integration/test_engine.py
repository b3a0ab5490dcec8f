"""The engine against a real SQLite database: state changes, limits, retries, hooks, time."""

from __future__ import annotations

import pytest

from conveyor.engine import Engine
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError
from conveyor.models import QueueSpec, RetryPolicy, RunStatus, TaskDefinition, TriggerOptions
from conveyor.protocol import AttemptOutcome, Heartbeat
from tests.integration.conftest import current_fence, held


def define(
    task_id: str,
    *,
    limit: int | None = None,
    queue: str | None = None,
    hooks=(),
    retry=None,
    schema=None,
):
    return TaskDefinition(
        id=task_id,
        queue=QueueSpec(name=queue or task_id, concurrency_limit=limit),
        retry=retry or RetryPolicy(max_attempts=3, min_timeout_ms=1000, factor=2, randomize=False),
        hooks=list(hooks),
        payload_schema=schema,
    )


@pytest.fixture
def env(engine):
    env = engine.environments.ensure("proj", "dev", "dev")
    engine.workers.register(
        env.id,
        "w1",
        "w1",
        [
            define("plain"),
            define("limited", limit=2),
            define("hooked", hooks=["on_success", "on_failure", "on_cancel"]),
            define(
                "schema",
                schema={
                    "type": "object",
                    "properties": {"url": {"type": "string"}},
                    "required": ["url"],
                },
            ),
        ],
    )
    return env


def lease_ids(engine, env, capacity=100, worker="w1"):
    engine.workers.heartbeat(
        worker, Heartbeat()
    )  # a live worker: the tests' clock jumps past its heartbeat timeout
    return [a.run_id for a in engine.workers.lease(env.id, worker, capacity).attempts]


def test_trigger_creates_a_queued_run_with_its_options(engine, env):
    run = engine.tasks.trigger(
        env.id,
        "plain",
        {"a": 1},
        TriggerOptions(
            tags=["x", "y"], metadata={"m": 1}, max_attempts=5, machine="micro", priority=3
        ),
    )
    got = engine.runs.get(env.id, run.id)
    assert got.status == RunStatus.QUEUED
    assert (got.payload, got.tags, got.metadata, got.max_attempts, got.machine, got.priority) == (
        {"a": 1},
        ["x", "y"],
        {"m": 1},
        5,
        "micro",
        3,
    )


def test_unknown_task_is_not_found_and_creates_nothing(engine, env):
    with pytest.raises(NotFound, match="nope"):
        engine.tasks.trigger(env.id, "nope", {})
    assert engine.runs.list(env.id)[0] == []


def test_schema_violation_names_the_field_and_creates_no_run(engine, env):
    with pytest.raises(PayloadError, match="url"):
        engine.tasks.trigger(env.id, "schema", {"url": 5})
    assert engine.runs.list(env.id)[0] == []


def test_same_idempotency_key_returns_the_same_run_until_its_ttl(engine, env, clock):
    first = engine.tasks.trigger(
        env.id, "plain", {}, TriggerOptions(idempotency_key="k", idempotency_key_ttl="1h")
    )
    again = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(idempotency_key="k"))
    assert again.id == first.id and again.is_cached
    clock.advance(3601)
    later = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(idempotency_key="k"))
    assert later.id != first.id and not later.is_cached


def keyed(engine, env, key="k", **options):
    return engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(idempotency_key=key, **options))


@pytest.mark.parametrize(
    "kind", ["aborted", "timed_out", "system_failure", "crashed", "payload_invalid"]
)
def test_a_run_ending_in_failure_releases_its_key(engine, env, kind):
    run = keyed(engine, env)
    lease_ids(engine, env)
    engine.workers.complete("w1", [held(engine, run.id, 1, kind, error={"message": "x"})])
    status = engine.runs.get(env.id, run.id).status
    if kind == "crashed":  # crashed with attempts left: retried, still holding its key
        assert keyed(engine, env).id == run.id
        return
    assert status.is_final and status != RunStatus.COMPLETED
    again = keyed(engine, env)
    assert again.id != run.id and not again.is_cached


def test_a_completed_run_keeps_its_key_and_reset_releases_it(engine, env):
    run = keyed(engine, env)
    lease_ids(engine, env)
    engine.workers.complete("w1", [held(engine, run.id, 1, "completed", output_json="1")])
    assert keyed(engine, env).id == run.id
    assert engine.tasks.reset_idempotency_key(env.id, "hooked", "k") is False  # another task
    assert engine.tasks.reset_idempotency_key(env.id, "plain", "k") is True
    assert engine.tasks.reset_idempotency_key(env.id, "plain", "k") is False
    assert keyed(engine, env).id != run.id
    assert engine.runs.get(env.id, run.id).status == RunStatus.COMPLETED  # the run stays


def test_canceled_and_expired_runs_release_their_keys(engine, env, clock):
    canceled = keyed(engine, env, "c", delay="1h")
    engine.runs.cancel(env.id, canceled.id)
    assert keyed(engine, env, "c").id != canceled.id
    expiring = keyed(engine, env, "e", ttl=2)
    clock.advance(5)
    engine.tick()
    assert engine.runs.get(env.id, expiring.id).status == RunStatus.EXPIRED
    assert keyed(engine, env, "e").id != expiring.id


def test_delayed_run_is_delayed_until_its_time_then_queued(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(delay="30s"))
    assert run.status == RunStatus.DELAYED
    engine.tick()
    assert lease_ids(engine, env) == []
    clock.advance(31)
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.QUEUED
    assert lease_ids(engine, env) == [run.id]


def test_canceled_delayed_run_never_runs(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(delay=10))
    engine.runs.cancel(env.id, run.id)
    clock.advance(20)
    engine.tick()
    assert lease_ids(engine, env) == []
    assert engine.runs.get(env.id, run.id).status == RunStatus.CANCELED


def test_ttl_expires_a_run_that_did_not_start_and_owes_on_failure(engine, env, clock):
    run = engine.tasks.trigger(env.id, "hooked", {}, TriggerOptions(ttl="5s"))
    clock.advance(6)
    engine.tick()
    got = engine.runs.get(env.id, run.id)
    assert got.status == RunStatus.EXPIRED and got.error.code == "expired"
    hooks = engine.workers.lease(env.id, "w1", 0).hooks
    assert [(h.run_id, h.hook) for h in hooks] == [(run.id, "on_failure")]
    engine.workers.hook_done(run.id, "on_failure", hooks[0].fence)
    clock.advance(120)
    assert engine.workers.lease(env.id, "w1", 0).hooks == []


def test_queue_limit_holds_within_one_lease_and_across_leases(engine, env):
    for _ in range(5):
        engine.tasks.trigger(env.id, "limited", {})
    assert len(lease_ids(engine, env, worker="w1")) == 2
    engine.workers.register(env.id, "w2", "w2")
    assert lease_ids(engine, env, worker="w2") == []


def test_concurrency_key_gets_its_own_copy_of_the_limit(engine, env):
    for key in ["a", "a", "a", "b", "b", "b"]:
        engine.tasks.trigger(env.id, "limited", {}, TriggerOptions(concurrency_key=key))
    assert len(lease_ids(engine, env)) == 4


def test_environment_limit_caps_all_queues(engine):
    env = engine.environments.ensure("proj", "staging", "staging", concurrency_limit=3)
    engine.workers.register(env.id, "w9", "w9", [define("a"), define("b")])
    for task in ["a", "b"] * 4:
        engine.tasks.trigger(env.id, task, {})
    assert len(lease_ids(engine, env, worker="w9")) == 3


def test_priority_gives_a_head_start_within_a_queue(engine, env, clock):
    first = engine.tasks.trigger(env.id, "limited", {})
    clock.advance(5)
    urgent = engine.tasks.trigger(env.id, "limited", {}, TriggerOptions(priority=10))
    assert lease_ids(engine, env, capacity=1) == [urgent.id]
    assert lease_ids(engine, env, capacity=1) == [first.id]


def test_paused_queue_starts_nothing_until_resumed(engine, env):
    run = engine.tasks.trigger(env.id, "plain", {})
    engine.queues.set_paused(env.id, "plain", True)
    assert lease_ids(engine, env) == []
    engine.queues.set_paused(env.id, "plain", False)
    assert lease_ids(engine, env) == [run.id]


def test_failed_attempt_is_retried_after_the_policy_delay_then_fails_for_good(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {})
    delays = []
    for attempt in (1, 2, 3):
        assert lease_ids(engine, env) == [run.id]
        engine.workers.complete(
            "w1", [held(engine, run.id, attempt, "failed", error={"message": f"boom {attempt}"})]
        )
        got = engine.runs.get(env.id, run.id)
        if attempt < 3:
            assert got.status == RunStatus.QUEUED
            delays.append(got.next_attempt_at.timestamp() - clock.now)
            assert lease_ids(engine, env) == []
            clock.advance(delays[-1])
    assert delays == [1.0, 2.0]
    got = engine.runs.get(env.id, run.id, with_attempts=True)
    assert got.status == RunStatus.FAILED and got.attempts == 3
    assert [a.error.message for a in got.attempt_list] == ["boom 1", "boom 2", "boom 3"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("aborted", RunStatus.FAILED),
        ("timed_out", RunStatus.TIMED_OUT),
        ("payload_invalid", RunStatus.FAILED),
        ("system_failure", RunStatus.SYSTEM_FAILURE),
    ],
)
def test_outcomes_that_are_never_retried(engine, env, kind, status):
    run = engine.tasks.trigger(env.id, "hooked", {})
    lease_ids(engine, env)
    engine.workers.complete("w1", [held(engine, run.id, 1, kind, error={"message": "x"})])
    assert engine.runs.get(env.id, run.id).status == status
    assert [h.hook for h in engine.workers.lease(env.id, "w1", 0).hooks] == ["on_failure"]


def test_a_failure_catch_error_retries_later_waits_for_that_time(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {})
    lease_ids(engine, env)
    outcome = held(engine, run.id, 1, "failed", error={"message": "429"})
    outcome.retry_at = clock() + 3600  # the Retry-After catch_error read, not the policy's 1 s
    engine.workers.complete("w1", [outcome])
    clock.advance(3599)
    engine.tick()
    assert lease_ids(engine, env) == []
    clock.advance(2)
    engine.tick()
    assert lease_ids(engine, env) == [run.id]


def test_success_records_output_and_owes_on_success(engine, env):
    run = engine.tasks.trigger(env.id, "hooked", {})
    lease_ids(engine, env)
    engine.workers.complete("w1", [held(engine, run.id, 1, "completed", output_json='{"ok":true}')])
    got = engine.runs.get(env.id, run.id)
    assert got.status == RunStatus.COMPLETED and got.output == {"ok": True}
    assert [h.hook for h in engine.workers.lease(env.id, "w1", 0).hooks] == ["on_success"]


def test_cancel_of_executing_run_tells_its_worker_and_ignores_its_late_outcome(engine, env):
    run = engine.tasks.trigger(env.id, "hooked", {})
    lease_ids(engine, env)
    fence = current_fence(engine, run.id)
    engine.runs.cancel(env.id, run.id)
    assert engine.workers.heartbeat("w1", Heartbeat(running=[(run.id, fence)])).stop == [run.id]
    engine.workers.complete(
        "w1", [AttemptOutcome(run.id, 1, "completed", output_json="1", fence=fence)]
    )
    got = engine.runs.get(env.id, run.id)
    assert got.status == RunStatus.CANCELED and got.output is None
    with pytest.raises(Conflict):
        engine.runs.cancel(env.id, run.id)


def test_runs_of_a_worker_that_stops_heartbeating_are_taken_back(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {})
    lease_ids(engine, env)
    clock.advance(engine.workers.timeout + 1)  # the worker stops its attempts itself now
    engine.tick()
    assert (
        engine.runs.get(env.id, run.id).status == RunStatus.EXECUTING
    )  # not taken back yet: the margin
    clock.advance(engine.workers.take_back_after - engine.workers.timeout)
    engine.tick()
    got = engine.runs.get(env.id, run.id, with_attempts=True)
    assert got.status == RunStatus.QUEUED
    assert got.attempt_list[0].status == "CRASHED"
    # a lost worker's late lease (a long poll still open) takes nothing
    assert engine.workers.lease(env.id, "w1", 10).attempts == []
    # until it heartbeats again: then it is alive and may lease
    engine.workers.heartbeat("w1", Heartbeat())
    clock.advance(2)
    assert [a.run_id for a in engine.workers.lease(env.id, "w1", 10).attempts] == [run.id]


def test_a_run_whose_lease_never_reached_its_live_worker_is_taken_back(engine, env, clock):
    engine.workers.heartbeat("w1", Heartbeat())
    first = engine.workers.lease(env.id, "w1", 10)
    lost, known = (
        engine.tasks.trigger(env.id, "plain", {}),
        engine.tasks.trigger(env.id, "plain", {}),
    )
    reply = engine.workers.lease(env.id, "w1", 10)
    assert sorted(a.run_id for a in reply.attempts) == sorted([lost.id, known.id])
    assert reply.lease_seq > first.lease_seq
    known_fence = next(a.fence for a in reply.attempts if a.run_id == known.id)
    # a heartbeat sent before that lease answer arrived lists neither: the answer may be on its way
    assert (
        engine.workers.heartbeat("w1", Heartbeat(running=[], lease_seq=first.lease_seq)).stop == []
    )
    assert engine.runs.get(env.id, lost.id).status == RunStatus.EXECUTING
    # once the worker has received it, a run it does not list was lost (the answer was dropped)
    beat = Heartbeat(running=[(known.id, known_fence)], lease_seq=reply.lease_seq)
    assert engine.workers.heartbeat("w1", beat).stop == []
    got = engine.runs.get(env.id, lost.id, with_attempts=True)
    assert got.status == RunStatus.QUEUED  # retried at once, not stranded under a live worker
    assert got.attempt_list[0].status == "CRASHED"
    assert "lease answer was lost" in str(got.attempt_list[0].error)
    assert engine.runs.get(env.id, known.id).status == RunStatus.EXECUTING


def test_a_restarting_worker_gives_back_what_it_held(engine, env):
    run = engine.tasks.trigger(env.id, "plain", {})
    lease_ids(engine, env)
    engine.workers.register(env.id, "w1", "w1")
    assert engine.runs.get(env.id, run.id).status == RunStatus.QUEUED


def test_batch_is_all_or_nothing_and_keeps_input_order(engine, env):
    good = [("plain", {"i": i}, TriggerOptions()) for i in range(50)]
    result = engine.tasks.batch_trigger(env.id, good)
    assert [r.payload["i"] for r in result.runs] == list(range(50))
    assert all(r.batch_id == result.batch_id for r in result.runs)
    with pytest.raises(PayloadError, match=r"items\[1\]"):
        engine.tasks.batch_trigger(
            env.id, [("schema", {"url": "a"}, TriggerOptions()), ("schema", {}, TriggerOptions())]
        )
    assert len(engine.runs.list(env.id, limit=1000)[0]) == 50
    with pytest.raises(InvalidRequest, match="1000"):
        engine.tasks.batch_trigger(env.id, [("plain", {}, TriggerOptions())] * 1001)


def test_replay_copies_the_run_with_an_optional_new_payload(engine, env):
    run = engine.tasks.trigger(env.id, "plain", {"a": 1}, TriggerOptions(tags=["t"]))
    same = engine.runs.replay(env.id, run.id)
    edited = engine.runs.replay(env.id, run.id, {"a": 2}, use_payload=True)
    assert (same.payload, same.tags, same.replayed_from) == ({"a": 1}, ["t"], run.id)
    assert edited.payload == {"a": 2}


def test_list_runs_filters_and_pages(engine, env, clock):
    for i in range(25):
        clock.advance(0.01)
        engine.tasks.trigger(
            env.id,
            "plain" if i % 2 else "limited",
            {},
            TriggerOptions(tags=["even"] if i % 2 == 0 else []),
        )
    page, cursor = engine.runs.list(env.id, limit=10)
    seen = [r.id for r in page]
    while cursor:
        page, cursor = engine.runs.list(env.id, limit=10, cursor=cursor)
        seen += [r.id for r in page]
    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen, reverse=True)
    assert len(engine.runs.list(env.id, tag="even", limit=100)[0]) == 13
    assert len(engine.runs.list(env.id, task_id="plain", limit=100)[0]) == 12
    assert len(engine.runs.list(env.id, statuses=["QUEUED"], limit=100)[0]) == 25
    with pytest.raises(InvalidRequest):
        engine.runs.list(env.id, statuses=["DONE"])


def test_one_environment_sees_nothing_of_another(engine, env):
    other = engine.environments.ensure("proj", "prod", "prod")
    run = engine.tasks.trigger(env.id, "plain", {})
    with pytest.raises(NotFound):
        engine.runs.get(other.id, run.id)
    # dev's tasks are not prod's: prod has no code defining "plain", so its run waits for a deploy
    assert engine.tasks.trigger(other.id, "plain", {}).status == RunStatus.PENDING_VERSION


def test_queue_limits_follow_the_code_unless_overridden(engine, env):
    engine.queues.set_limit(env.id, "limited", 5)  # an operator's override
    engine.workers.set_tasks(env.id, [define("limited", limit=1)])  # a reload declares 1
    assert engine.queues.get(env.id, "limited").concurrency_limit == 5  # the override holds
    engine.queues.set_limit(env.id, "limited", None)
    assert engine.queues.get(env.id, "limited").concurrency_limit == 1
    engine.workers.set_tasks(
        env.id, [define("limited")]
    )  # the code drops its limit: so does the queue
    assert engine.queues.get(env.id, "limited").concurrency_limit is None


def test_a_trigger_makes_a_new_queue_with_its_limit_but_never_changes_one(engine, env):
    def trigger(queue, **more):
        return engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(queue=queue, **more))

    trigger({"name": "fresh", "concurrency_limit": 2})
    assert engine.queues.get(env.id, "fresh").concurrency_limit == 2
    trigger({"name": "fresh", "concurrency_limit": 2})  # the same limit: fine
    trigger({"name": "fresh"})  # no limit given: the queue as it is
    with pytest.raises(Conflict, match="queue 'fresh' has concurrency_limit 2") as refused:
        trigger({"name": "fresh", "concurrency_limit": 9})
    assert "queues.set_concurrency" in refused.value.message
    engine.workers.set_tasks(env.id, [define("plain"), define("limited", limit=1)])  # code
    with pytest.raises(Conflict, match="'limited' has concurrency_limit 1"):
        trigger({"name": "limited", "concurrency_limit": 50})
    trigger({"name": "open"})
    with pytest.raises(Conflict, match="'open' has no concurrency limit"):
        trigger({"name": "open", "concurrency_limit": 3})
    engine.queues.set_limit(env.id, "fresh", 9)  # what the refusal says to do first
    trigger({"name": "fresh", "concurrency_limit": 9})
    engine.queues.set_limit(env.id, "fresh", None)
    assert engine.queues.get(env.id, "fresh").concurrency_limit == 2  # never rewritten
    assert engine.queues.get(env.id, "limited").concurrency_limit == 1
    assert engine.queues.get(env.id, "open").concurrency_limit is None
    assert len(engine.runs.list(env.id)[0]) == 5  # the refused triggers made nothing
    # one batch naming a new queue with two limits is refused whole
    with pytest.raises(Conflict, match=r"items\[1\]: queue 'pair'"):
        engine.tasks.batch_trigger(
            env.id,
            [
                ("plain", {}, TriggerOptions(queue={"name": "pair", "concurrency_limit": 1})),
                ("plain", {}, TriggerOptions(queue={"name": "pair", "concurrency_limit": 2})),
            ],
        )
    assert len(engine.runs.list(env.id)[0]) == 5


def test_a_shared_queue_takes_the_limit_any_of_its_tasks_declares(engine, env):
    engine.workers.set_tasks(
        env.id, [define("a", queue="shared", limit=2), define("b", queue="shared")]
    )
    assert engine.queues.get(env.id, "shared").concurrency_limit == 2
    engine.workers.set_tasks(
        env.id, [define("b", queue="shared"), define("a", queue="shared", limit=2)]
    )
    assert engine.queues.get(env.id, "shared").concurrency_limit == 2


def test_a_started_run_no_longer_expires(engine, env, clock):
    run = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(ttl=2))
    lease_ids(engine, env)
    engine.workers.complete("w1", [held(engine, run.id, 1, "failed", error={"message": "x"})])
    clock.advance(5)  # past the ttl while it waits out its retry delay
    engine.tick()
    assert engine.runs.get(env.id, run.id).status == RunStatus.QUEUED


def test_one_keys_backlog_does_not_hide_another_keys_runs(engine, env):
    engine.workers.set_tasks(env.id, [define("tenants", limit=1)])
    for _ in range(80):
        engine.tasks.trigger(env.id, "tenants", {}, TriggerOptions(concurrency_key="big"))
    small = engine.tasks.trigger(env.id, "tenants", {}, TriggerOptions(concurrency_key="small"))
    first = lease_ids(engine, env)
    assert len(first) == 2 and small.id in first  # one of "big", and "small" although it came last
    assert lease_ids(engine, env) == []


def test_a_worker_id_belongs_to_one_environment(engine, env):
    other = engine.environments.ensure("proj", "prod", "prod")
    with pytest.raises(Conflict, match="another environment"):
        engine.workers.register(other.id, "w1", "w1")
    with pytest.raises(NotFound):
        engine.workers.check(other.id, "w1")
    engine.workers.check(env.id, "w1")


def test_a_cleanly_stopped_worker_hands_its_runs_back_without_using_retries(engine, env):
    run = engine.tasks.trigger(env.id, "plain", {}, TriggerOptions(max_attempts=1))
    lease_ids(engine, env)
    engine.workers.stopped("w1")
    got = engine.runs.get(env.id, run.id, with_attempts=True)
    assert got.status == RunStatus.QUEUED and got.attempt_list[0].status == "INTERRUPTED"
    assert (
        engine.workers.lease(env.id, "w1", 10).attempts == []
    )  # a stopped worker's open lease takes nothing


def test_a_cursor_that_is_not_a_run_id_is_refused(engine, env):
    with pytest.raises(InvalidRequest, match="cursor"):
        engine.runs.list(env.id, cursor="zzz")


def test_a_start_is_never_stamped_before_the_end_whose_slot_it_took(engine, env):
    """A lease may wait for another lease's locks before it counts the slots; the end of a run
    committed meanwhile frees a slot it then takes, and the start must not be stamped earlier
    than that end (the queue's limit would look overshot in every record of the runs)."""
    first, second = (
        engine.tasks.trigger(env.id, "limited", {}),
        engine.tasks.trigger(env.id, "limited", {}),
    )
    third = engine.tasks.trigger(env.id, "limited", {})
    assert lease_ids(engine, env) == [first.id, second.id]  # limit 2
    engine.workers.heartbeat("w1", Heartbeat())
    wall = [engine.clock()]
    timed: list[Engine] = []  # an engine of the same database on this clock

    def clock() -> float:  # every reading a second later; the lease's first lets the end in
        if not timed:  # the engine is being made
            return wall[0]
        wall[0] += 1
        reading = wall[0]
        if len(wall) == 1:
            wall.append(0)
            timed[0].workers.complete(
                "w1",
                [
                    AttemptOutcome(
                        first.id,
                        1,
                        "completed",
                        output_json="1",
                        fence=current_fence(engine, first.id),
                    )
                ],
            )
        return reading

    timed.append(Engine(engine.store, clock=clock, worker_timeout=10))
    assert [a.run_id for a in timed[0].workers.lease(env.id, "w1", 10).attempts] == [third.id]
    ended, started = engine.runs.get(env.id, first.id), engine.runs.get(env.id, third.id)
    assert started.started_at >= ended.completed_at
