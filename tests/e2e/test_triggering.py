"""Triggering from a backend: options, idempotency, delays, batches, schemas, children."""

from __future__ import annotations

import time

import pytest

from conveyor import PayloadError


def test_same_idempotency_key_returns_the_same_run(client):
    first = client.trigger("echo", {"n": 1}, idempotency_key="order-42")
    again = client.trigger("echo", {"n": 2}, idempotency_key="order-42")
    assert again.id == first.id and again.is_cached


def test_metadata_and_tags_reach_the_run_and_its_record(client):
    handle = client.trigger(
        "run-context", {}, metadata={"order": 42, "by": "shop"}, tags=["vip", "eu"]
    )
    run = client.runs.poll(handle.id, timeout=15)
    assert run.output == {
        "metadata": {"order": 42, "by": "shop"},
        "tags": ["vip", "eu"],
        "attempt": 1,
    }
    assert run.metadata == {"order": 42, "by": "shop"} and run.tags == ["vip", "eu"]
    assert [r.id for r in client.runs.list(tag="vip", limit=10).data] == [handle.id]


def test_a_delayed_run_is_delayed_then_runs(client):
    handle = client.trigger("echo", {"d": 1}, delay="1.5s")
    assert client.runs.retrieve(handle.id).status == "DELAYED"
    run = client.runs.poll(handle.id, timeout=15)
    assert run.status == "COMPLETED"
    assert (run.started_at - run.created_at).total_seconds() >= 1.4


def test_a_canceled_delayed_run_never_runs(client, platform):
    handle = client.trigger("echo", {}, delay=1)
    assert client.runs.cancel(handle.id).status == "CANCELED"
    time.sleep(2.0)
    run = client.runs.retrieve(handle.id)
    assert run.status == "CANCELED" and run.started_at is None
    assert f"on_start {handle.id}" not in platform.hooks()


def test_a_fifty_item_batch_completes(client):
    batch = client.batch_trigger("echo", [{"payload": {"i": i}} for i in range(50)])
    assert len(batch.runs) == 50
    runs = [client.runs.poll(h.id, timeout=30) for h in batch.runs]
    assert [r.output for r in runs] == [{"i": i} for i in range(50)]


def test_schema_task_refuses_a_bad_payload_at_trigger_time(client):
    before = len(client.runs.list(task="video", limit=100).data)
    with pytest.raises(PayloadError, match="video_url"):
        client.trigger("video", {"format": "mp4"})
    assert len(client.runs.list(task="video", limit=100).data) == before
    run = client.runs.poll(client.trigger("video", {"video_url": "http://x/y.mp4"}).id, timeout=15)
    assert run.output == {"url": "http://x/y.mp4", "format": "mp4"}


def test_a_task_triggers_a_child_that_records_its_parent(client):
    parent = client.runs.poll(client.trigger("parent", {}).id, timeout=15)
    child = client.runs.poll(parent.output["child"], timeout=15)
    assert child.parent_id == parent.id and child.tags == ["child"]
    assert child.output == {"from": "parent"}


def test_ttl_expires_a_run_that_cannot_start(client):
    client.queues.pause("three")
    try:
        handle = client.trigger("sleepy", {"seconds": 0}, ttl=1)
        run = client.runs.poll(handle.id, timeout=10)
    finally:
        client.queues.resume("three")
    assert run.status == "EXPIRED" and run.started_at is None


def test_replay_runs_the_same_payload_again(client):
    first = client.runs.poll(client.trigger("echo", {"again": True}).id, timeout=15)
    replay = client.runs.replay(first.id)
    run = client.runs.poll(replay.id, timeout=15)
    assert run.output == {"again": True} and run.id != first.id
