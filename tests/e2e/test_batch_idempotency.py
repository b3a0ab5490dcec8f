"""A batch's own idempotency key as a Trigger.dev user relies on it, on both topologies: the
same key gives back the same batch (id and runs, marked cached) from a backend and inside a
run; a plain key inside a run is that run's, a global one the environment's; a failed run of
the batch releases the key (the next call keeps what completed and redoes what failed), and
`idempotency_keys.reset_batch` releases it at once; a retry of a run replays its keyed batches."""

from __future__ import annotations

import pytest

from conveyor import Client

ITEMS = [{"payload": {"n": 1}}, {"payload": {"n": 2}}]


def run_of(client: Client, task: str, payload: dict) -> dict:
    run = client.runs.poll(client.trigger(task, payload).id, timeout=60)
    assert run.status == "COMPLETED", run.error
    return run.output


@pytest.mark.e2e
def test_a_backend_s_second_batch_with_the_key_is_the_first(client: Client) -> None:
    first = client.tasks.batch_trigger("bk-child", ITEMS, idempotency_key="import-1")
    again = client.batch_trigger("bk-child", ITEMS, idempotency_key="import-1")
    assert again.is_cached and not first.is_cached and again.batch_id == first.batch_id
    assert [r.id for r in again.runs] == [r.id for r in first.runs]
    for handle in first.runs:
        run = client.runs.poll(handle.id, timeout=30)
        assert run.status == "COMPLETED" and run.batch_id == first.batch_id
    # completed: the key still holds; reset releases it
    assert client.batch_trigger("bk-child", ITEMS, idempotency_key="import-1").is_cached
    assert client.idempotency_keys.reset_batch("import-1") is True
    fresh = client.batch_trigger("bk-child", ITEMS, idempotency_key="import-1")
    assert not fresh.is_cached and fresh.batch_id != first.batch_id


@pytest.mark.e2e
def test_a_failed_run_releases_the_key_and_only_what_failed_runs_again(client: Client) -> None:
    items = [{"payload": {"n": 1}}, {"payload": {"n": 2, "fail": True}}]
    first = client.batch_trigger("bk-child", items, idempotency_key="import-2")
    done, failed = (client.runs.poll(r.id, timeout=30) for r in first.runs)
    assert done.status == "COMPLETED" and failed.status == "FAILED"
    again = client.batch_trigger("bk-child", ITEMS, idempotency_key="import-2")
    assert not again.is_cached and again.batch_id != first.batch_id
    assert again.runs[0].id == done.id and again.runs[0].is_cached
    assert again.runs[1].id != failed.id
    assert client.runs.poll(again.runs[1].id, timeout=30).status == "COMPLETED"
    assert client.batch_trigger("bk-child", ITEMS, idempotency_key="import-2").batch_id == (
        again.batch_id
    )


@pytest.mark.e2e
def test_inside_a_run_a_plain_key_is_the_run_s_and_a_global_one_is_shared(
    client: Client,
) -> None:
    one, two = run_of(client, "bk-twice", {"key": "k1"}), run_of(client, "bk-twice", {"key": "k1"})
    for out in (one, two):
        assert out["second"] == out["first"] and out["second_runs"] == out["first_runs"]
        assert out["again"] == out["waited"]
        assert out["cached"] == [False, True, False, True]
        assert out["outputs"] == [{"n": 3}, {"n": 4}]
    assert one["first"] != two["first"]  # each run its own batch
    # the same text from a backend is another key: no run's
    backend = client.batch_trigger("bk-child", ITEMS, idempotency_key="k1")
    assert backend.batch_id not in (one["first"], two["first"])
    g1, g2 = (
        run_of(client, "bk-twice", {"key": "g", "scope": "global"}),
        run_of(client, "bk-twice", {"key": "g", "scope": "global"}),
    )
    assert g1["first"] == g2["first"] and g2["cached"] == [True, True, True, True]
    from_backend = client.batch_trigger("bk-child", ITEMS, idempotency_key="g")
    assert from_backend.is_cached and from_backend.batch_id == g1["first"]


@pytest.mark.e2e
def test_a_retry_replays_its_keyed_batches_and_redoes_only_failed_children(
    client: Client,
) -> None:
    handle = client.trigger("bk-retry", {})
    run = client.runs.poll(handle.id, timeout=60)
    assert run.status == "COMPLETED", run.error
    assert run.output["attempt"] == 2
    children = client.runs.list(tag=handle.id, limit=100).data
    by_n: dict[int, list] = {}
    for child in children:
        by_n.setdefault(child.payload["n"], []).append(child)
    # the batch it did not wait for, and the child that completed, were made once
    assert len(by_n[0]) == 1 and by_n[0][0].batch_id == run.output["plain"]
    assert [c.id for c in by_n[1]] == [run.output["runs"][0]]
    # the failed child ran again, in the new batch that holds the key now
    assert sorted(c.status for c in by_n[2]) == ["COMPLETED", "FAILED"]
    redo = next(c for c in by_n[2] if c.status == "COMPLETED")
    assert redo.id == run.output["runs"][1] and redo.batch_id == run.output["batch"]
    assert next(c for c in by_n[2] if c.status == "FAILED").batch_id != run.output["batch"]
