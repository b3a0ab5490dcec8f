"""`GET /metrics` of a real platform, on both topologies (`conveyor dev`; `conveyor server` on
PostgreSQL with two remote workers), read by Prometheus' own parser: runs finished by task and
status, start latency per queue, queue depth of a paused queue, workers connected."""

from __future__ import annotations

import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Client
from tests.e2e.conftest import DevServer, TeamPlatform, wait_for


def scrape(platform: DevServer | TeamPlatform) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the platform's metrics (the test runs on the server's machine: no token)."""
    response = httpx.get(f"{platform.api_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    return sum(v for n, have, v in samples if n == name and labels.items() <= have.items())


def test_metrics_count_what_the_platform_did(
    platform: DevServer | TeamPlatform, client: Client
) -> None:
    before = scrape(platform)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    runs = [client.trigger("echo", {"n": n}, queue={"name": queue}) for n in range(3)]
    failed = client.trigger("aborter", {})
    for run in [*runs, failed]:
        client.runs.poll(run.id, timeout=60)

    def counted() -> bool:
        after = scrape(platform)
        done = total(after, "conveyor_runs_finished_total", task="echo", status="COMPLETED")
        return (
            done - total(before, "conveyor_runs_finished_total", task="echo", status="COMPLETED")
            >= 3
        )

    wait_for(counted, timeout=20, what="the finished runs to be counted")
    after = scrape(platform)
    assert total(after, "conveyor_run_start_latency_seconds_count", queue=queue) == 3
    latency = total(after, "conveyor_run_start_latency_seconds_sum", queue=queue)
    assert 0 <= latency < 3 * 30  # seconds each run waited to start, on an idle platform
    finished = "conveyor_runs_finished_total"
    grew = total(after, finished, task="aborter", status="FAILED") - total(
        before, finished, task="aborter", status="FAILED"
    )
    assert grew == 1
    assert total(after, "conveyor_run_duration_seconds_count", task="echo", status="COMPLETED") >= 3
    assert total(after, "conveyor_lease_seconds_count") > total(
        before, "conveyor_lease_seconds_count"
    )
    assert total(after, "conveyor_database_transaction_seconds_count") > 0
    assert total(after, "conveyor_database_up") == 1
    workers = 2 if isinstance(platform, TeamPlatform) else 1
    assert total(after, "conveyor_workers") == workers


def test_a_paused_queue_shows_its_depth(platform: DevServer | TeamPlatform, client: Client) -> None:
    queue = f"paused-{uuid.uuid4().hex[:8]}"
    first = client.trigger("echo", {}, queue={"name": queue, "concurrency_limit": 2})
    client.runs.poll(first.id, timeout=60)  # the queue exists now, with its limit
    client.queues.pause(queue)
    held = [client.trigger("echo", {"n": n}, queue={"name": queue}) for n in range(4)]
    try:
        samples = scrape(platform)
        assert total(samples, "conveyor_queue_queued", queue=queue) == 4
        assert total(samples, "conveyor_queue_executing", queue=queue) == 0
        assert total(samples, "conveyor_queue_paused", queue=queue) == 1
        assert total(samples, "conveyor_queue_concurrency_limit", queue=queue) == 2
        assert total(samples, "conveyor_runs", task="echo", status="QUEUED") >= 4
    finally:
        client.queues.resume(queue)
    for run in held:
        assert client.runs.poll(run.id, timeout=60).status == "COMPLETED"
    assert total(scrape(platform), "conveyor_queue_queued", queue=queue) == 0


def test_usage_counts_the_time_a_run_held_a_slot_not_its_waits(
    platform: DevServer | TeamPlatform, client: Client
) -> None:
    gate = client.waitpoints.create_token(timeout="10m")
    run = client.trigger("metered", {"work": 0.3, "gate": gate.id})
    wait_for(
        lambda: client.runs.retrieve(run.id).status == "WAITING",
        timeout=30,
        what="the run to suspend on its token",
    )
    time.sleep(3)  # waiting costs nothing
    client.waitpoints.complete_token(gate.id, {})
    done = client.runs.poll(run.id, timeout=60)
    assert done.status == "COMPLETED", done.error
    # what the run saw: 0.3 s before the wait, and after it 0.3 s replayed and 0.3 s more
    assert 0.85 <= done.output["compute"] < 2.5, done.output
    assert done.output["attempt"] == done.output["compute"]  # its first attempt
    # what the platform recorded when the attempt ended, its 3 s of waiting left out
    recorded = client.runs.retrieve(run.id)
    assert 0.85 <= recorded.compute_seconds < 2.5
    (attempt,) = recorded.attempt_list or []
    assert attempt.compute_seconds == recorded.compute_seconds
    usage = client.usage.retrieve(since=time.time() - 600)
    metered = [t for t in usage.tasks if t.task_id == "metered"]
    assert metered and metered[0].compute_seconds >= recorded.compute_seconds
