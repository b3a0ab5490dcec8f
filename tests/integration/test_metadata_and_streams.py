"""Run metadata, tags and streams in the engine, on SQLite and PostgreSQL: ops applied in order
to the run, its parent and its root, a replay's ops skipped by their number (an increment
counts once), limits refused naming what is over, and streams stored in order once."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.engine import Engine
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError, StaleAttempt
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.protocol import (
    Heartbeat,
    MetadataCall,
    MetadataOp,
    StreamCall,
    TriggerCall,
    TriggerItem,
)
from tests.integration.conftest import ManualClock, holder

TASKS = [
    TaskDefinition(id=name, queue=QueueSpec(name=f"task/{name}"), retry=RetryPolicy())
    for name in ("parent", "child")
]


@pytest.fixture
def env(engine: Engine) -> str:
    environment = engine.environments.ensure("proj_m", "prod", "prod")
    engine.workers.register(environment.id, "w", "w", TASKS)
    return environment.id


def started(engine: Engine, env: str, task: str = "parent", **trigger: Any) -> str:
    run = engine.tasks.trigger(env, task, {}, TriggerOptions(**trigger))
    engine.workers.heartbeat("w", Heartbeat())
    leased = engine.workers.lease(env, "w", 10).attempts
    assert run.id in [a.run_id for a in leased]
    return run.id


def ops(*items: tuple[Any, ...]) -> list[MetadataOp]:
    return [MetadataOp(*item) for item in items]


def meta(engine: Engine, env: str, run_id: str, changes: list[MetadataOp], **who: Any) -> Any:
    """The metadata call of the attempt holding `run_id`, as a worker relays it."""
    return engine.durable.call(
        env, run_id, MetadataCall(changes), **(who or holder(engine, run_id))
    )


def stream(
    engine: Engine,
    env: str,
    run_id: str,
    name: str,
    start: int,
    chunks: list[Any],
    done: bool = False,
) -> Any:
    call = StreamCall(name, start, chunks, done)
    return engine.durable.call(env, run_id, call, **holder(engine, run_id))


def test_ops_apply_in_order_and_a_replay_applies_none_twice(engine: Engine, env: str) -> None:
    run_id = started(engine, env)
    meta(
        engine,
        env,
        run_id,
        ops(
            (1, "self", "set", "total", 3),
            (2, "self", "increment", "done", 1),
            (3, "self", "append", "files", "a.mp3"),
            (4, "self", "tag", "tags", "user-42"),
        ),
    )
    # the run is replayed after a wait: its code makes ops 1..4 again, then 5
    meta(
        engine,
        env,
        run_id,
        ops(
            (1, "self", "set", "total", 3),
            (2, "self", "increment", "done", 1),
            (3, "self", "append", "files", "a.mp3"),
            (4, "self", "tag", "tags", "user-42"),
            (5, "self", "increment", "done", 2),
        ),
    )
    run = engine.runs.get(env, run_id)
    assert run.metadata == {"total": 3, "done": 3, "files": ["a.mp3"]}
    assert run.tags == ["user-42"]


def test_children_change_their_parent_and_root(engine: Engine, env: str) -> None:
    root = started(engine, env)
    call = TriggerCall("trigger:child#1", [TriggerItem("child", {}, {})], False, False)
    answer = engine.durable.call(env, root, call, **holder(engine, root))
    child = answer["runs"][0]["id"]
    engine.workers.heartbeat("w", Heartbeat())
    engine.workers.lease(env, "w", 10)
    meta(
        engine,
        env,
        child,
        ops((1, "parent", "increment", "children_done", 1), (2, "root", "append", "log", "c1")),
    )
    assert engine.runs.get(env, root).metadata == {"children_done": 1, "log": ["c1"]}
    assert engine.runs.get(env, child).metadata == {}
    # a root run is its own parent and root
    meta(engine, env, root, ops((1, "parent", "set", "stage", "merging")))
    assert engine.runs.get(env, root).metadata["stage"] == "merging"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((1, "self", "set", "blob", "x" * 300_000), "the limit is 256 KB"),
        ((1, "self", "increment", "name", 1), "is not a number"),
        ((1, "self", "append", "total", 1), "is not a list"),
        ((1, "self", "tag", "tags", ""), "a tag is text"),
        ((1, "self", "set", "when", float("nan")), "not JSON"),
    ],
)
def test_an_op_that_does_not_fit_is_refused_and_named(
    engine: Engine, env: str, bad: tuple[Any, ...], message: str
) -> None:
    run_id = started(engine, env, metadata={"name": "ada", "total": 2})
    answer = meta(engine, env, run_id, ops((1, "parent", "set", "x", 1), bad))
    assert len(answer["refused"]) == 1 and message in answer["refused"][0]
    metadata = engine.runs.get(env, run_id).metadata
    if "256 KB" in message:  # the run's metadata would be over the limit: none of its changes
        assert metadata == {"name": "ada", "total": 2}
    else:  # the op that fits is applied
        assert metadata == {"name": "ada", "total": 2, "x": 1}


def test_eleven_tags_are_refused(engine: Engine, env: str) -> None:
    run_id = started(engine, env, tags=[f"t{i}" for i in range(10)])
    answer = meta(engine, env, run_id, ops((1, "self", "tag", "tags", "one-more")))
    assert "at most 10 tags" in answer["refused"][0]
    assert len(engine.runs.get(env, run_id).tags) == 10


def test_only_the_attempt_holding_the_run_changes_it(engine: Engine, env: str) -> None:
    run_id = started(engine, env)
    stale = holder(engine, run_id)
    engine.runs.cancel(env, run_id)
    with pytest.raises(StaleAttempt):
        meta(engine, env, run_id, ops((1, "self", "set", "k", 1)), **stale)


def test_a_backend_replaces_the_metadata(engine: Engine, env: str) -> None:
    run_id = started(engine, env, metadata={"a": 1})
    assert engine.runs.update_metadata(env, run_id, {"b": [1, 2]}).metadata == {"b": [1, 2]}
    with pytest.raises(PayloadError, match="256 KB"):
        engine.runs.update_metadata(env, run_id, {"big": "x" * 300_000})
    with pytest.raises(InvalidRequest, match="JSON object"):
        engine.runs.update_metadata(env, run_id, [1, 2])
    with pytest.raises(NotFound):
        engine.runs.update_metadata(env, "run_nope", {})


def test_streams_keep_their_chunks_in_order_once(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    run_id = started(engine, env)
    stream(engine, env, run_id, "llm", 0, ["a", "b"])
    stream(engine, env, run_id, "llm", 0, ["a", "b", "c"])  # sent again, and more
    stream(engine, env, run_id, "llm", 3, [{"token": "d"}], done=True)
    chunks, ended = engine.runs.stream(env, run_id, "llm")
    assert chunks == [(0, "a"), (1, "b"), (2, "c"), (3, {"token": "d"})] and ended
    assert engine.runs.stream(env, run_id, "llm", after=2) == ([(3, {"token": "d"})], True)
    assert engine.runs.stream(env, run_id, "other") == ([], False)
    with pytest.raises(InvalidRequest, match="sent before chunk"):
        stream(engine, env, run_id, "gap", 5, ["x"])
    with pytest.raises(PayloadError, match="a chunk is at most 64 KB"):
        stream(engine, env, run_id, "big", 0, ["x" * 70_000])
    with pytest.raises(Conflict, match="has ended"):  # a second stream under the same name
        stream(engine, env, run_id, "llm", 0, ["a", "b", "c", "d", "e"])
    with pytest.raises(InvalidRequest, match="stream name"):
        stream(engine, env, run_id, "no spaces", 0, ["x"])


def test_children_incrementing_their_parent_at_once_lose_no_increment(
    engine: Engine, env: str
) -> None:
    import threading

    root = started(engine, env)
    items = [TriggerItem("child", {}, {}) for _ in range(8)]
    call = TriggerCall("batch_trigger:child#1", items, False, True)
    children = [
        r["id"] for r in engine.durable.call(env, root, call, **holder(engine, root))["runs"]
    ]
    engine.workers.heartbeat("w", Heartbeat())
    engine.workers.lease(env, "w", 10)
    barrier = threading.Barrier(len(children))
    errors: list[BaseException] = []

    def child_flushes(child: str) -> None:
        try:
            barrier.wait()
            for seq in range(1, 6):
                meta(engine, env, child, ops((seq, "parent", "increment", "done", 1)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=child_flushes, args=(c,)) for c in children]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert engine.runs.get(env, root).metadata == {"done": 8 * 5}


def children_of(engine: Engine, env: str, parent: str, count: int, key: str) -> list[str]:
    """`count` child runs of `parent`, leased (executing) by worker w."""
    items = [TriggerItem("child", {}, {}) for _ in range(count)]
    call = TriggerCall(key, items, False, True)
    answer = engine.durable.call(env, parent, call, **holder(engine, parent))
    engine.workers.heartbeat("w", Heartbeat())
    engine.workers.lease(env, "w", 10)
    return [r["id"] for r in answer["runs"]]


def flush(engine: Engine, run_id: str, *items: tuple[Any, ...]) -> tuple[str, int, Any]:
    return run_id, holder(engine, run_id)["fence"], ops(*items)


def test_a_worker_s_flushes_go_in_one_transaction_each_answered_alone(
    engine: Engine, env: str
) -> None:
    root = started(engine, env, metadata={"name": "ada"})
    first, second = children_of(engine, env, root, 2, "batch_trigger:child#1")
    canceled = started(engine, env)
    stale = flush(engine, canceled, (1, "self", "set", "k", 1))
    engine.runs.cancel(env, canceled)
    other_env = engine.environments.ensure("proj_m", "staging", "staging").id
    meta(engine, env, first, ops((1, "self", "set", "k", 0)))

    answers = engine.durable.metadata(
        env,
        "w",
        [
            flush(engine, first, (1, "self", "set", "k", 0), (2, "parent", "increment", "done", 1)),
            flush(
                engine, second, (1, "parent", "increment", "done", 1), (2, "self", "set", "s", 2)
            ),
            stale,
            flush(engine, root, (1, "self", "set", "blob", "x" * 300_000)),
            flush(engine, root, (2, "self", "append", "log", "root")),
        ],
    )
    # the first flush's op 1 was applied before (a replay): only op 2 counts
    assert answers[0] == {"applied": 2, "refused": []}
    assert answers[1] == {"applied": 2, "refused": []}
    assert isinstance(answers[2], StaleAttempt)
    assert "256 KB" in answers[3]["refused"][0]  # refused alone, the rest applied
    assert answers[4] == {"applied": 2, "refused": []}
    assert engine.runs.get(env, root).metadata == {"name": "ada", "done": 2, "log": ["root"]}
    assert engine.runs.get(env, second).metadata == {"s": 2}
    assert engine.runs.get(env, canceled).metadata == {}
    # a run of another environment is not found there, and nothing of the batch is lost for it
    other = engine.durable.metadata(
        other_env, "w", [flush(engine, second, (3, "self", "set", "s", 3))]
    )
    assert isinstance(other[0], NotFound)
    assert engine.runs.get(env, second).metadata == {"s": 2}


def test_two_workers_batches_crossing_parents_and_children_never_deadlock(
    engine: Engine, env: str
) -> None:
    """Each batch changes one run and the parent of another tree's child: locked in any order
    of arrival, two such batches at once would wait on each other (PostgreSQL)."""
    import threading

    x, y = started(engine, env), started(engine, env)
    (x1,) = children_of(engine, env, x, 1, "batch_trigger:child#1")
    (y1,) = children_of(engine, env, y, 1, "batch_trigger:child#1")
    rounds = 300
    fence = {run: holder(engine, run)["fence"] for run in (x, y, x1, y1)}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def batches(own: str, child: str) -> None:
        try:
            barrier.wait()
            for seq in range(1, rounds + 1):
                answers = engine.durable.metadata(
                    env,
                    "w",
                    [
                        (own, fence[own], ops((seq, "self", "increment", "own", 1))),
                        (child, fence[child], ops((seq, "parent", "increment", "from_child", 1))),
                    ],
                )
                assert answers == [{"applied": seq, "refused": []}] * 2
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=batches, args=(x, y1)),
        threading.Thread(target=batches, args=(y, x1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for run in (x, y):
        assert engine.runs.get(env, run).metadata == {"own": rounds, "from_child": rounds}


def test_only_a_later_attempt_triggers_failed_children_again(
    engine: Engine, env: str, clock: ManualClock
) -> None:
    """`again` (worker/replay.py sends it on a retry) is checked by the engine: the attempt that
    journaled the call, or a journal whose children all completed, replays the answer."""
    from conveyor.protocol import AttemptOutcome

    root = started(engine, env, max_attempts=3)
    items = [TriggerItem("child", {"i": i}, {}) for i in range(2)]
    call = TriggerCall("batch_trigger_and_wait:child#1", items, True, True)
    first = engine.durable.call(env, root, call, **holder(engine, root))
    kids = [r["id"] for r in first["runs"]]
    again = TriggerCall(call.key, items, True, True, True)
    # the same attempt: the answer as journaled, whatever the flag says
    assert engine.durable.call(env, root, again, **holder(engine, root))["runs"] == first["runs"]
    engine.workers.heartbeat("w", Heartbeat())
    engine.workers.lease(env, "w", 10)
    engine.workers.complete(
        "w",
        [
            AttemptOutcome(
                kids[0], 1, "completed", output_json="0", fence=holder(engine, kids[0])["fence"]
            ),
            AttemptOutcome(
                kids[1],
                1,
                "aborted",
                error={"message": "no"},
                fence=holder(engine, kids[1])["fence"],
            ),
        ],
    )
    engine.workers.complete(
        "w",
        [
            AttemptOutcome(
                root,
                1,
                "failed",
                error={"message": "a child failed"},
                fence=holder(engine, root)["fence"],
            )
        ],
    )
    assert engine.runs.get(env, root).status.value == "QUEUED"  # its retry
    clock.advance(600)  # past its retry delay
    engine.tick()
    engine.workers.heartbeat("w", Heartbeat())
    leased = engine.workers.lease(env, "w", 10).attempts
    spec = next(a for a in leased if a.run_id == root)
    entry = next(e for e in spec.journal if e.key == call.key)
    assert entry.attempt == 1 and spec.attempt == 2  # what the worker decides from
    retried = engine.durable.call(env, root, again, **holder(engine, root))
    ids = [r["id"] for r in retried["runs"]]
    assert ids[0] == kids[0] and ids[1] not in kids  # the failed one again, the other kept
    assert retried["waitpoint"]["status"] == "PENDING"
    # the new answer is the journal's now: the same attempt asking again gets it
    assert engine.durable.call(env, root, again, **holder(engine, root))["runs"] == retried["runs"]


def test_a_cancel_and_a_child_s_flush_to_its_parent_at_once_both_go_through(
    engine: Engine, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel locks the parent, then its children; a metadata batch locks the child, then its
    parent: on PostgreSQL they deadlock, and the one the database undoes is made again."""
    import threading
    import time

    from conveyor.engine.transitions import Transitions

    root = started(engine, env)
    (child,) = children_of(engine, env, root, 1, "batch_trigger:child#1")
    fence = holder(engine, child)["fence"]
    finish = Transitions.finish

    def slow_finish(self: Transitions, tx: Any, row: Any, *args: Any, **kwargs: Any) -> Any:
        out = finish(self, tx, row, *args, **kwargs)
        if row["id"] == root:  # the cancel holds the parent while the flush takes the child
            time.sleep(0.5)
        return out

    monkeypatch.setattr(Transitions, "finish", slow_finish)
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            engine.runs.cancel(env, root)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    canceling = threading.Thread(target=cancel)
    canceling.start()
    time.sleep(0.2)
    answers = engine.durable.metadata(
        env, "w", [(child, fence, ops((1, "parent", "increment", "done", 1)))]
    )
    canceling.join()
    assert not errors, errors
    assert engine.runs.get(env, root).status.value == "CANCELED"
    # either the flush came first (applied) or after the cancel (its attempt is stale)
    assert answers == [{"applied": 1, "refused": []}] or isinstance(answers[0], StaleAttempt)
