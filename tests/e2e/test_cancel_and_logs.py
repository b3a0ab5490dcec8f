"""Canceling an executing run stops it; logs from logger, print and logging are kept per run."""

from __future__ import annotations

from tests.e2e.conftest import wait_for


def test_cancel_of_an_executing_run_stops_it_and_on_cancel_runs(client, platform):
    handle = client.trigger("blocker", {})
    wait_for(lambda: client.runs.retrieve(handle.id).status == "EXECUTING", what="EXECUTING")
    assert client.runs.cancel(handle.id).status == "CANCELED"
    wait_for(lambda: f"on_cancel {handle.id}" in platform.hooks(), what="on_cancel")
    run = client.runs.retrieve(handle.id)
    assert run.status == "CANCELED" and run.completed_at is not None


def test_print_logging_and_logger_lines_are_stored_with_the_run(client):
    handle = client.trigger("chatty", {})
    client.runs.poll(handle.id, timeout=15)
    logs = wait_for(
        lambda: client.runs.logs(handle.id) if len(client.runs.logs(handle.id)) >= 3 else None,
        what="three log lines",
    )
    by_message = {line.message: line for line in logs}
    assert by_message["from print"].level == "info"
    assert by_message["from logging"].level == "warn"
    assert by_message["from logger"].attributes == {"k": 1}


def test_on_cancel_fires_on_workers_that_have_started_no_run_yet(fresh_platform):
    fresh_platform.start()
    with fresh_platform.client() as client:
        handle = client.trigger("echo", {}, delay="1h")
        client.runs.cancel(handle.id)
    wait_for(lambda: f"on_cancel {handle.id}" in fresh_platform.hooks(), what="on_cancel")
