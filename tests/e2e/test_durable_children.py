"""Child runs and fan-out: trigger_and_wait, batch_trigger_and_wait,
batch.trigger_by_task_and_wait."""

from __future__ import annotations

from tests.e2e.conftest import wait_for


def test_fan_out_returns_results_in_input_order_with_a_failed_child(client):
    parent = client.runs.poll(
        client.trigger("fan-out", {"count": 6, "fail_index": 3}).id, timeout=60
    )
    assert parent.status == "COMPLETED", parent.error
    out = parent.output
    assert out["one"] == 42
    assert out["ok"] == [True, True, True, False, True, True]
    assert out["outputs"] == [0, 2, 4, None, 8, 10]
    assert "cannot double 3" in out["errors"][3]
    children = [client.runs.retrieve(i) for i in out["ids"]]
    assert all(c.parent_id == parent.id for c in children)
    assert len({c.batch_id for c in children}) == 1


def test_a_parent_and_its_children_share_a_queue_of_limit_one(client):
    # fan-out and double both run in queue "solo" (limit 1): the parent gives its slot back
    # while it waits
    run = client.runs.poll(client.trigger("fan-out", {"count": 3}).id, timeout=60)
    assert run.status == "COMPLETED"
    assert run.output["outputs"] == [0, 2, 4]


def test_batch_by_task_and_wait_runs_different_tasks(client):
    run = client.runs.poll(client.trigger("by-task", {}).id, timeout=60)
    assert run.output == [2, {"hello": "world"}]


def test_unwrap_raises_task_run_failed_carrying_the_child_error(client):
    run = client.runs.poll(client.trigger("unwrapper", {}).id, timeout=60)
    assert run.output["raised"] == "TaskRunFailed"
    assert "cannot double 1" in run.output["error"]
    assert client.runs.retrieve(run.output["run_id"]).status == "FAILED"


def test_a_waiting_parent_holds_no_slot_and_is_waiting(client):
    handle = client.trigger("grand-parent", {})
    wait_for(
        lambda: client.runs.retrieve(handle.id).status == "WAITING", what="the parent to suspend"
    )
    children = client.runs.list(task="blocker-child", limit=10).data
    child = next(c for c in children if c.parent_id == handle.id)
    wait_for(
        lambda: client.runs.retrieve(child.id).status == "WAITING", what="the child to suspend"
    )
    queues = {q.name: q for q in client.queues.list()}
    assert queues["grand-parent"].running == 0 and queues["blocker-child"].running == 0


def test_canceling_a_parent_cancels_its_unfinished_children(client):
    handle = client.trigger("grand-parent", {})
    wait_for(
        lambda: client.runs.retrieve(handle.id).status == "WAITING", what="the parent to suspend"
    )
    child = wait_for(
        lambda: next(
            (
                c
                for c in client.runs.list(task="blocker-child", limit=50).data
                if c.parent_id == handle.id
            ),
            None,
        ),
        what="the child",
    )
    client.runs.cancel(handle.id)
    assert client.runs.retrieve(child.id).status == "CANCELED"
    assert client.runs.retrieve(handle.id).status == "CANCELED"
