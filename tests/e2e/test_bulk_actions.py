"""Bulk replay through the real platform, on both topologies (`conveyor dev` on SQLite, and
`conveyor server` on PostgreSQL with remote workers): the failed runs of a task, picked by
status, task and tag, are each replayed once by the server's tick, and the replays run."""

from __future__ import annotations

import secrets
from collections import Counter


def test_bulk_replay_of_a_tasks_failed_runs_replays_each_once(client):
    tag = "bulk-" + secrets.token_hex(4)
    failed = [client.trigger("aborter", {}, tags=[tag]).id for _ in range(3)]
    kept = client.trigger("echo", {"x": 1}, tags=[tag]).id
    for run_id in [*failed, kept]:
        client.runs.poll(run_id, interval=0.1, timeout=30)
    assert client.runs.bulk_count("replay", status="FAILED", task="aborter", tag=tag) == 3

    action = client.runs.bulk_replay(status="FAILED", task="aborter", tag=tag, since="10m")
    assert action.total == 3
    done = client.runs.wait_bulk_action(action.id, interval=0.1, timeout=30)
    assert (done.status, done.done, done.failed) == ("COMPLETED", 3, 0)

    runs = client.runs.list(tag=tag, limit=100).data
    replays = [r for r in runs if r.replayed_from]
    assert Counter(r.replayed_from for r in replays) == Counter({run_id: 1 for run_id in failed})
    for replay in replays:  # a real run of the task again: it aborts as the first did
        ended = client.runs.poll(replay.id, interval=0.1, timeout=30)
        assert ended.status == "FAILED" and ended.error.message == "stop here"
    assert client.runs.bulk_action(action.id).done == 3  # nothing replayed twice since
