"""`GET /metrics` over a real engine on SQLite and PostgreSQL: the gauges read from the database
(runs by status, queue depth and executing runs, limits, workers), the counters and histograms of
runs this server started and ended, lease and transaction timings; and who may read them (the
server's own machine, or whoever has the metrics token)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor.server import create_app
from tests.integration.conftest import KEY, held

if TYPE_CHECKING:
    from conftest import Backend

LOCAL = ("127.0.0.1", 40000)


def samples(api: TestClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    response = api.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


ENV = {"project": "proj_test", "environment": "dev"}


@pytest.fixture
def api(backend: Backend) -> Iterator[TestClient]:
    """The app as a client on this machine sees it (its address is a loopback one)."""
    with TestClient(
        create_app(backend.engine, metrics_token=""),
        headers={"Authorization": f"Bearer {KEY}"},
        client=LOCAL,
    ) as client:
        yield client


def trigger(api: TestClient, task: str) -> str:
    response = api.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_gauges_count_runs_queues_and_workers_from_the_database(
    api: TestClient, backend: Backend
) -> None:
    for _ in range(3):
        trigger(api, "encode")
    trigger(api, "hello")
    found = samples(api)
    assert value(found, "conveyor_database_up") == 1
    assert value(found, "conveyor_runs", **ENV, task="encode", status="QUEUED") == 3
    assert value(found, "conveyor_runs", **ENV, task="hello", status="QUEUED") == 1
    assert value(found, "conveyor_queue_queued", **ENV, queue="media/encode") == 3
    assert value(found, "conveyor_queue_executing", **ENV, queue="media/encode") == 0
    assert value(found, "conveyor_queue_concurrency_limit", **ENV, queue="media/encode") == 2
    assert value(found, "conveyor_queue_concurrency_limit", **ENV, queue="task/hello") is None
    assert value(found, "conveyor_workers", **ENV) == 1

    reply = backend.engine.workers.lease(backend.env.id, "worker-1", capacity=10)
    assert len(reply.attempts) == 3  # two of encode (its limit), one of hello
    found = samples(api)
    assert value(found, "conveyor_runs", **ENV, task="encode", status="EXECUTING") == 2
    assert value(found, "conveyor_runs", **ENV, task="encode", status="QUEUED") == 1
    assert value(found, "conveyor_queue_executing", **ENV, queue="media/encode") == 2
    assert value(found, "conveyor_queue_queued", **ENV, queue="media/encode") == 1
    assert value(found, "conveyor_queue_paused", **ENV, queue="media/encode") == 0

    backend.engine.workers.stopped("worker-1")
    assert value(samples(api), "conveyor_workers", **ENV) == 0


def test_runs_started_and_ended_are_counted_with_their_latency_and_duration(
    api: TestClient, backend: Backend
) -> None:
    engine, env = backend.engine, backend.env
    ids = [trigger(api, "hello") for _ in range(2)]
    reply = engine.workers.lease(env.id, "worker-1", capacity=10)
    assert {a.run_id for a in reply.attempts} == set(ids)
    engine.workers.complete(
        "worker-1",
        [
            held(engine, ids[0], 1, "completed", output_json="{}"),
            held(engine, ids[1], 1, "failed", error={"name": "E", "message": "no"}),
        ],
    )
    api.post(f"/api/v1/runs/{trigger(api, 'hello')}/cancel")
    found = samples(api)
    done = {"task": "hello", **ENV}
    assert value(found, "conveyor_runs_finished_total", **done, status="COMPLETED") == 1
    assert value(found, "conveyor_runs_finished_total", **done, status="FAILED") == 1
    assert value(found, "conveyor_runs_finished_total", **done, status="CANCELED") == 1
    # a canceled run that never started has no duration
    assert value(found, "conveyor_run_duration_seconds_count", **done, status="COMPLETED") == 1
    assert value(found, "conveyor_run_duration_seconds_count", **done, status="CANCELED") is None
    started = {"queue": "task/hello", **ENV}
    assert value(found, "conveyor_run_start_latency_seconds_count", **started) == 2
    assert value(found, "conveyor_run_start_latency_seconds_sum", **started) >= 0
    assert value(found, "conveyor_lease_seconds_count", **ENV) == 1
    assert value(found, "conveyor_database_transaction_seconds_count") >= 4
    assert value(found, "conveyor_runs", **ENV, task="hello", status="QUEUED") is None


def test_what_waits_for_a_commit_happens_once_and_never_for_an_undone_change(
    backend: Backend,
) -> None:
    """Runs are counted after their transaction commits: a transaction undone counts nothing."""
    told: list[str] = []
    with pytest.raises(RuntimeError), backend.store.transaction() as tx:
        tx.after_commit(lambda: told.append("undone"))
        raise RuntimeError("undo")
    with backend.store.transaction() as tx:
        tx.after_commit(lambda: told.append("kept"))
        tx.after_commit(lambda: told.append("again"))
        assert told == []
    assert told == ["kept", "again"]


def test_without_a_token_only_the_servers_own_machine_may_read(backend: Backend) -> None:
    app = create_app(backend.engine, metrics_token="")
    with TestClient(app, client=("203.0.113.7", 5000)) as remote:
        response = remote.get("/metrics")
    assert response.status_code == 403
    assert "CONVEYOR_METRICS_TOKEN" in response.json()["error"]["message"]
    with TestClient(app, client=("::1", 5000)) as local:
        assert local.get("/metrics").status_code == 200


def test_with_a_token_every_reader_needs_it(backend: Backend) -> None:
    app = create_app(backend.engine, metrics_token="s3cret-metrics")
    with TestClient(app, client=LOCAL) as local, TestClient(app, client=("203.0.113.7", 1)) as far:
        assert local.get("/metrics").status_code == 401  # even from this machine
        wrong = far.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        # an API key is not the metrics token
        assert far.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
        right = far.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert right.status_code == 200 and "conveyor_database_up 1.0" in right.text


def test_the_token_comes_from_the_environment(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_METRICS_TOKEN", "from-env")
    with TestClient(create_app(backend.engine), client=LOCAL) as local:
        assert local.get("/metrics").status_code == 401
        ok = local.get("/metrics", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200


def test_the_grafana_dashboard_and_the_docs_name_only_metrics_the_server_has(
    api: TestClient,
) -> None:
    """docs/grafana/conveyor.json and docs/metrics.md stay true to what /metrics serves."""
    import json
    import re
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs"
    response = api.get("/metrics")
    served: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        served.add(family.name)
        if family.type == "counter":
            served.add(family.name + "_total")
        elif family.type == "histogram":
            served |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    dashboard = json.loads((docs / "grafana" / "conveyor.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    named = {n for e in exprs for n in re.findall(r"\bconveyor_[a-z_]+", e)}
    table = re.findall(r"^\| `(conveyor_[a-z_]+)` \|", (docs / "metrics.md").read_text(), re.M)
    assert len(table) == 13 and len(named) >= 10
    assert sorted((named | set(table)) - served) == []
