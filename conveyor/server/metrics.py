"""`GET /metrics`: the platform in Prometheus' text format (docs/metrics.md).

Two kinds of figures. Gauges are read from the database when the metrics are scraped
(`engine.gauges`): runs that have not ended by task and status, each queue's depth, executing
runs and limit, live workers; every server answers the same. Counters and histograms are this
server's own, told by the engine once each change has committed (`engine.observers`): runs
ended, how long runs waited to start and ran, how long leases and database transactions took.
Prometheus sums them over the servers it scrapes.

Who may read: with a metrics token (`CONVEYOR_METRICS_TOKEN`, or `metrics_token=` of
`create_app`), a request must carry `Authorization: Bearer <token>`; without one, only requests
from this machine (a loopback address) are answered, so a server listening on every address does
not show its tasks and queues to the network.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.engine import Engine
from conveyor.errors import ConveyorError, NotFound

TOKEN_ENV = "CONVEYOR_METRICS_TOKEN"

# seconds from when a run could start to when it did: milliseconds on a quiet platform, minutes
# behind a backlog
START_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# seconds from a run's first start to its end: waits included, so up to days
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
# a lease or a transaction: milliseconds, unless the database struggles
DATABASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


class Metrics:
    """This server's metrics registry over `engine`; an observer of the engine (see the module
    docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._names: dict[str, tuple[str, str]] = {}  # env id: (project, environment)
        self._names_lock = threading.Lock()
        self.registry = CollectorRegistry()
        run_labels = ["project", "environment", "task", "status"]
        self.finished = Counter(
            "conveyor_runs_finished",
            "Runs this server ended, by task and final status.",
            run_labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "conveyor_run_duration_seconds",
            "Seconds from a run's first start to its end (waits included), of runs this "
            "server ended.",
            run_labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.start_latency = Histogram(
            "conveyor_run_start_latency_seconds",
            "Seconds from when an attempt could start (triggered, its delay or retry time "
            "passed, its wait completed) to when a worker's lease through this server started it.",
            ["project", "environment", "queue"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.lease = Histogram(
            "conveyor_lease_seconds",
            "Seconds a worker's lease transaction took on this server.",
            ["project", "environment"],
            buckets=DATABASE_BUCKETS,
            registry=self.registry,
        )
        self.transaction = Histogram(
            "conveyor_database_transaction_seconds",
            "Seconds each write transaction of this server took, its commit included.",
            buckets=DATABASE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Platform(engine))
        engine.observers.add(self)
        engine.store.on_transaction = self.transaction.observe

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _environment(self, env_id: str) -> tuple[str, str]:
        with self._names_lock:
            known = self._names.get(env_id)
        if known is None:
            try:
                env = self._engine.environments.get(env_id)
                known = (env.project, env.slug)
            except NotFound:
                known = ("", env_id)
            with self._names_lock:
                self._names[env_id] = known
        return known

    # -- the engine's observer ---------------------------------------------------------

    def run_started(self, env_id: str, queue: str, waited: float) -> None:
        self.start_latency.labels(*self._environment(env_id), queue).observe(waited)

    def run_finished(self, env_id: str, task_id: str, status: str, seconds: float | None) -> None:
        labels = (*self._environment(env_id), task_id, status)
        self.finished.labels(*labels).inc()
        if seconds is not None:
            self.duration.labels(*labels).observe(seconds)

    def leased(self, env_id: str, seconds: float, started: int) -> None:
        self.lease.labels(*self._environment(env_id)).observe(seconds)


class _Platform(Collector):
    """The gauges read from the database at each scrape (`engine.gauges`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []  # read at each scrape: nothing to read when the registry is made

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "conveyor_database_up", "1 when this server's scrape could read the database, else 0."
        )
        failures = CounterMetricFamily(
            "conveyor_database_unavailable",
            "Transactions of this server that failed because the database could not be reached.",
            value=self._engine.store.failures,
        )
        try:
            snapshot = self._engine.gauges.read()
        except ConveyorError:  # the database is away: say so, and what this server knows
            up.add_metric([], 0)
            yield from (up, failures)
            return
        up.add_metric([], 1)
        env = ["project", "environment"]
        runs = GaugeMetricFamily(
            "conveyor_runs",
            "Runs that have not ended, by task and status (ended runs: conveyor_runs_finished).",
            labels=[*env, "task", "status"],
        )
        queued = GaugeMetricFamily(
            "conveyor_queue_queued", "Runs waiting in a queue for a slot.", labels=[*env, "queue"]
        )
        executing = GaugeMetricFamily(
            "conveyor_queue_executing", "Runs of a queue executing now.", labels=[*env, "queue"]
        )
        limit = GaugeMetricFamily(
            "conveyor_queue_concurrency_limit",
            "A queue's concurrency limit in force (queues without one are left out).",
            labels=[*env, "queue"],
        )
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 while a queue is paused.", labels=[*env, "queue"]
        )
        workers = GaugeMetricFamily(
            "conveyor_workers", "Workers connected to an environment.", labels=env
        )
        for e in snapshot.environments:
            names = [e.project, e.environment]
            for (task, status), n in sorted(e.runs.items()):
                runs.add_metric([*names, task, status], n)
            for queue in sorted(e.queued):
                queued.add_metric([*names, queue], e.queued[queue])
                executing.add_metric([*names, queue], e.executing[queue])
                paused.add_metric([*names, queue], int(e.paused[queue]))
                cap = e.limits[queue]
                if cap is not None:
                    limit.add_metric([*names, queue], cap)
            workers.add_metric(names, e.workers)
        yield from (up, failures, runs, queued, executing, limit, paused, workers)


def _local(request: Request) -> bool:
    """Whether the request comes from this machine: a loopback address (or a Unix socket)."""
    if request.client is None:
        return True
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def metrics_router(metrics: Metrics, token: str | None) -> APIRouter:
    """The `/metrics` route over `metrics`, guarded by `token` (see the module docstring)."""
    router = APIRouter()

    @router.get(
        "/metrics",
        tags=["health"],
        summary="Metrics in Prometheus' text format",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}},
            401: {"description": "A metrics token is set and the request does not carry it"},
            403: {"description": "No metrics token is set and the request is not local"},
        },
    )
    def read_metrics(request: Request) -> Response:
        """Runs, queues, workers, start latency, durations, lease and database timings. With
        CONVEYOR_METRICS_TOKEN set on the server, send `Authorization: Bearer <token>`;
        without it, only requests from the server's own machine are answered."""
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise HTTPException(
                    401,
                    detail="the metrics need `Authorization: Bearer <token>`, with the token "
                    f"the server was given in {TOKEN_ENV}",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif not _local(request):
            raise HTTPException(
                403,
                detail="without a metrics token the metrics are served to the server's own "
                f"machine only; set {TOKEN_ENV} on the server to scrape it from elsewhere",
            )
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
