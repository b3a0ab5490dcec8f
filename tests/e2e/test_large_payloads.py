"""Payloads and outputs of megabytes travel whole; beyond the limit they get a clear error."""

from __future__ import annotations

import pytest

from conveyor import PayloadError


def test_megabyte_payloads_and_outputs_travel_whole_without_hurting_neighbours(client):
    neighbours = [client.trigger("big-output", {"size": 10, "sleep": 1.0}) for _ in range(3)]
    big = client.trigger("big-output", {"size": 3_000_000, "blob": "y" * 2_000_000})
    run = client.runs.poll(big.id, timeout=30)
    assert run.status == "COMPLETED", run.error
    assert len(run.output["blob"]) == 3_000_000 and run.output["echo"] == 2_000_000
    for handle in neighbours:
        done = client.runs.poll(handle.id, timeout=30)
        assert done.status == "COMPLETED" and done.attempts == 1


def test_a_payload_over_the_limit_is_refused_at_trigger_time(client):
    with pytest.raises(PayloadError, match="limit is 10 MB"):
        client.trigger("big-output", {"size": 1, "blob": "z" * (11 * 1024 * 1024)})


def test_an_output_over_the_limit_fails_once_with_a_clear_error(client):
    run = client.runs.poll(client.trigger("big-output", {"size": 11 * 1024 * 1024}).id, timeout=60)
    assert run.status == "FAILED" and run.attempts == 1
    assert run.error.code == "output_invalid" and "limit is 10 MB" in run.error.message
