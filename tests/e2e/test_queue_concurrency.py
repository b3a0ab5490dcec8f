"""A queue's concurrency limit holds for real runs on a real `conveyor dev`."""

from __future__ import annotations

from tests.e2e.conftest import peak_overlap


def test_nine_runs_in_a_queue_of_limit_three_overlap_exactly_three(client):
    handles = [client.trigger("sleepy", {"seconds": 0.8}) for _ in range(9)]
    runs = [client.runs.poll(h.id, interval=0.2, timeout=30) for h in handles]
    assert [r.status for r in runs] == ["COMPLETED"] * 9
    assert peak_overlap(runs) == 3
    total = max(r.completed_at for r in runs) - min(r.started_at for r in runs)
    assert 2.3 < total.total_seconds() < 6  # three waves of 0.8 s


def test_paused_queue_starts_nothing_until_resumed(client):
    client.queues.pause("three")
    try:
        handle = client.trigger("sleepy", {"seconds": 0})
        import time

        time.sleep(1.0)
        assert client.runs.retrieve(handle.id).status == "QUEUED"
    finally:
        client.queues.resume("three")
    assert client.runs.poll(handle.id, timeout=10).status == "COMPLETED"


def test_sync_tasks_run_off_the_event_loop(client):
    handles = [client.trigger("sync-sleep", {}) for _ in range(4)]
    runs = [client.runs.poll(h.id, timeout=20) for h in handles]
    assert peak_overlap(runs) >= 3  # four 1 s sleeps overlap: they do not block each other
