"""Idempotency keys as a Trigger.dev user relies on them, on both topologies: a plain key given
inside a run is that run's (two parents get a child each), a global one the environment's; a
key is released when its run fails or is canceled, and by `idempotency_keys.reset`."""

from __future__ import annotations

import pytest

from conveyor import Client


def parent(client: Client, key: str, scope: str | None = None) -> dict[str, str]:
    payload = {"key": key} if scope is None else {"key": key, "scope": scope}
    run = client.runs.poll(client.trigger("idem-parent", payload).id, timeout=30)
    assert run.status == "COMPLETED", run.error
    return run.output


@pytest.mark.e2e
def test_a_plain_key_inside_a_run_is_that_run_s_and_a_global_one_is_shared(
    client: Client,
) -> None:
    one, two = parent(client, "order-7"), parent(client, "order-7")
    # within a run the key dedupes; across runs each has its own child
    assert one["second"] == one["first"] and one["cached"]
    assert two["second"] == two["first"]
    assert one["first"] != two["first"]
    # the same plain key from a backend is global: not any run's
    backend = client.trigger("idem-child", {}, idempotency_key="order-7")
    assert backend.id not in (one["first"], two["first"])
    # a global key made inside runs is the backend's key
    g1, g2 = parent(client, "invoice-9", "global"), parent(client, "invoice-9", "global")
    assert g1["first"] == g2["first"]
    assert client.trigger("idem-child", {}, idempotency_key="invoice-9").id == g1["first"]
    # run scope, made explicitly, is what a plain key gets
    assert parent(client, "order-8", "run")["key"].startswith("run:")


@pytest.mark.e2e
def test_a_failed_or_canceled_run_releases_its_key(client: Client) -> None:
    failed = client.trigger("idem-child", {"fail": True}, idempotency_key="pay-1")
    assert client.runs.poll(failed.id, timeout=30).status == "FAILED"
    again = client.trigger("idem-child", {}, idempotency_key="pay-1")
    assert again.id != failed.id and not again.is_cached
    assert client.runs.poll(again.id, timeout=30).status == "COMPLETED"
    # a completed run keeps it
    assert client.trigger("idem-child", {}, idempotency_key="pay-1").id == again.id

    waiting = client.trigger("idem-child", {}, idempotency_key="pay-2", delay="1h")
    client.runs.cancel(waiting.id)
    assert client.trigger("idem-child", {}, idempotency_key="pay-2", delay="1h").id != waiting.id


@pytest.mark.e2e
def test_reset_releases_a_key_at_once(client: Client) -> None:
    first = client.trigger("idem-child", {}, idempotency_key="mail-3")
    client.runs.poll(first.id, timeout=30)
    assert client.idempotency_keys.reset("idem-child", "mail-3") is True
    assert client.idempotency_keys.reset("idem-child", "mail-3") is False  # nothing holds it
    second = client.trigger("idem-child", {}, idempotency_key="mail-3")
    assert second.id != first.id and not second.is_cached
    # another task's key of the same text is another key
    assert client.idempotency_keys.reset("idem-parent", "mail-3") is False
    assert client.trigger("idem-child", {}, idempotency_key="mail-3").id == second.id


@pytest.mark.e2e
def test_a_plain_token_key_inside_a_run_is_that_run_s(client: Client) -> None:
    def tokens() -> dict[str, str]:
        run = client.runs.poll(client.trigger("idem-token", {}).id, timeout=30)
        assert run.status == "COMPLETED", run.error
        return run.output

    one, two = tokens(), tokens()
    assert one["again"] == one["first"] and two["again"] == two["first"]
    assert one["first"] != two["first"]
    assert one["shared"] == two["shared"]
    # the global key is the one a backend gives
    assert client.waitpoints.create_token(idempotency_key="approve-all").id == one["shared"]


@pytest.mark.e2e
def test_debounced_triggers_make_one_run_with_the_last_payload(client: Client) -> None:
    spec = {"key": "user-5", "delay": "1.5s"}
    handles = [client.trigger("idem-child", {"n": n}, debounce=spec) for n in range(3)]
    assert len({h.id for h in handles}) == 1
    assert [h.is_cached for h in handles] == [False, True, True]
    assert client.runs.retrieve(handles[0].id).status == "DELAYED"
    run = client.runs.poll(handles[0].id, timeout=30)
    assert run.status == "COMPLETED" and run.output == {"n": 2}
    # once it started, the key gathers a new run
    assert client.trigger("idem-child", {"n": 9}, debounce=spec).id != run.id


@pytest.mark.e2e
def test_a_token_key_ttl_given_from_a_backend_holds_then_expires(client: Client) -> None:
    import time

    first = client.waitpoints.create_token(idempotency_key="ttl-1", idempotency_key_ttl="1s")
    assert client.waitpoints.create_token(idempotency_key="ttl-1").id == first.id
    time.sleep(1.2)
    assert client.waitpoints.create_token(idempotency_key="ttl-1").id != first.id


@pytest.mark.e2e
def test_catch_error_skips_retrying_or_retries_at_the_time_it_gives(client: Client) -> None:
    skipped = client.runs.poll(client.trigger("caught", {"skip": True}).id, timeout=30)
    assert skipped.status == "FAILED" and skipped.attempts == 1  # 3 allowed
    later = client.runs.poll(client.trigger("caught", {"retry_in": 2.5}).id, timeout=30)
    assert later.status == "COMPLETED" and later.output == {"attempt": 2}
    first, second = client.runs.retrieve(later.id).attempt_list or []
    assert (second.started_at - first.completed_at).total_seconds() >= 2.3  # not the 0.1 s policy
    # an answer catch_error cannot give is logged, and the policy applies
    policy = client.runs.poll(client.trigger("caught", {"bad_answer": True}).id, timeout=30)
    assert policy.status == "COMPLETED" and policy.output == {"attempt": 2}
    assert any("catch_error failed" in line.message for line in client.runs.logs(policy.id))
