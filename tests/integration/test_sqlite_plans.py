"""SQLite plans the lease's queries on the indexes made for them, with a backlog in place.

SQLite has no statistics of our tables (nothing runs ANALYZE), and without them its planner took
the index of every queued run by time (`runs_by_status`) for the keyed queue's heads and runs,
the whole environment's runs for the stopping ones and the pending hooks, and even for starting
four runs by id: a lease behind 10,000 queued runs cost 96 ms, every trigger of the environment
waiting behind it for SQLite's write lock (bench/RESULTS.md, the fairness suite). The SQLite
text of those queries names the index (`INDEXED BY`) or keeps a term off an index (`+column`);
this test reads the plans so that a change of a query or an index cannot bring that back."""

from __future__ import annotations

import sqlite3
import time

import pytest

from conveyor.engine import Engine
from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
from conveyor.store import open_store
from conveyor.store.queries import bind, get_query


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[sqlite3.Connection, str]:
    folder = tmp_path_factory.mktemp("plans")
    store = open_store(f"sqlite:///{folder / 'plans.db'}")
    store.migrate()
    engine = Engine(store)
    env = engine.environments.ensure("plans", "dev", "dev")
    task = TaskDefinition(
        id="work", queue=QueueSpec(name="fair", concurrency_limit=4), retry=RetryPolicy()
    )
    engine.workers.register(env.id, "w1", "w1", [task])
    for key in ("big", "big", "big", None):
        engine.tasks.batch_trigger(
            env.id, [("work", {}, TriggerOptions(concurrency_key=key))] * 1000
        )
    engine.workers.lease(env.id, "w1", 4)
    store.close()
    return sqlite3.connect(folder / "plans.db"), env.id


def plan(conn: sqlite3.Connection, name: str, **params: object) -> str:
    sql, values = bind(get_query(name, "sqlite"), params, "named")
    return "\n".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values))


def test_the_lease_reads_a_keyed_queue_through_its_own_index(backlog) -> None:
    conn, env_id = backlog
    heads = plan(conn, "queued_key_heads", env_id=env_id, queue="fair", now=time.time())
    assert "runs_keyed_dequeue" in heads and "runs_by_status" not in heads, heads
    runs = plan(
        conn,
        "queued_candidates_of_key",
        env_id=env_id,
        queue="fair",
        key="big",
        now=time.time(),
        limit=4,
    )
    assert "USING INDEX runs_keyed_dequeue" in runs and "TEMP B-TREE" not in runs, runs


def test_slots_hooks_and_starts_are_found_without_reading_every_run(backlog) -> None:
    conn, env_id = backlog
    counts = plan(conn, "executing_counts", env_id=env_id)
    assert "runs_stopping" in counts and "runs_dequeue" not in counts, counts
    hooks = plan(conn, "lease_hooks", env_id=env_id, now=time.time(), until=0.0, limit=50)
    assert "runs_pending_hook" in hooks and "runs_changes" not in hooks, hooks
    ids = [r[0] for r in conn.execute("SELECT id FROM runs LIMIT 4")]
    lease = plan(
        conn,
        "lease_runs",
        ids=ids,
        worker_id="w1",
        now=time.time(),
        version=None,
        lease_seq=1,
    )
    assert lease == "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (id=?)", lease


def test_the_hinted_queries_are_the_same_on_postgresql() -> None:
    """PostgreSQL keeps the plain text (it has statistics, and no INDEXED BY)."""
    for name in ("queued_key_heads", "executing_counts", "lease_runs"):
        text = get_query(name, "postgres").sql
        assert "INDEXED BY" not in text and "+status" not in text and "+available_at" not in text
