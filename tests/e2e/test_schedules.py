"""Schedules end to end, on real processes: a declarative schedule follows the code and fires
with an imperative one on both topologies (`conveyor dev`; `conveyor server` on PostgreSQL with
remote workers), and two servers on one PostgreSQL, one of them killed -9 as the runs of a fire
time are being made, leave exactly one run per (schedule, fire time).

Cron has minute resolution, so each test waits for a minute boundary (about half a minute)."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.engine.schedules import LOOKAHEAD
from tests.databases import postgres_schema
from tests.e2e.conftest import (
    DevServer,
    ServerProcess,
    TeamPlatform,
    WorkerProcess,
    make_project,
    wait_for,
)

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")

SCHEDULED = """
from pathlib import Path

from conveyor import schedules

FIRED = Path(__file__).resolve().parent.parent / "fired.log"


def note(payload: schedules.ScheduledPayload, run_id: str) -> None:
    with FIRED.open("a") as out:
        out.write(f"{payload.schedule_id} {payload.timestamp.isoformat()} {run_id}\\n")


@schedules.task(id="every-minute", cron="CRON")
async def every_minute(payload: schedules.ScheduledPayload, ctx) -> dict:
    note(payload, ctx.run.id)
    return {"for": payload.timestamp.isoformat()}


@schedules.task(id="per-customer")
async def per_customer(payload: schedules.ScheduledPayload, ctx) -> dict:
    note(payload, ctx.run.id)
    return {"customer": payload.external_id}
"""


def write_tasks(root: Path, cron: str | None) -> None:
    if cron is None:  # a scheduled task without a schedule of its own
        text = SCHEDULED.replace('id="every-minute", cron="CRON"', 'id="every-minute"')
    else:
        text = SCHEDULED.replace("CRON", cron)
    (root / "tasks" / "scheduled.py").write_text(text)


def fired(root: Path) -> list[tuple[str, str, str]]:
    path = root / "fired.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


def next_boundary(margin: float) -> float:
    """The next whole minute at least `margin` seconds away."""
    now = time.time()
    boundary = (int(now) // 60 + 1) * 60
    return boundary if boundary - now >= margin else boundary + 60


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@pytest.fixture(params=["dev", "team"])
def scheduled_platform(request: pytest.FixtureRequest, tmp_path: Path):
    root = make_project(tmp_path)
    write_tasks(root, "* * * * *")
    if request.param == "dev":
        platform: DevServer | TeamPlatform = DevServer(root)
        try:
            platform.start()
            yield platform
        finally:
            platform.stop()
        return
    with postgres_schema() as url:
        platform = TeamPlatform(root, url, project="Schedules")
        try:
            platform.start()
            yield platform
        finally:
            platform.stop()


def test_schedules_follow_the_code_and_fire_once_per_time_on_both_topologies(
    scheduled_platform: DevServer | TeamPlatform,
) -> None:
    platform = scheduled_platform
    with platform.client() as client:
        (declared,) = client.schedules.list(type="DECLARATIVE").data
        assert (declared.task, declared.cron) == ("every-minute", "* * * * *")
        customer = client.schedules.create(
            task="per-customer", cron="* * * * *", external_id="acme", deduplication_key="acme"
        )
        boundary = next_boundary(margin=3)
        wait_for(
            lambda: len({(s, t) for s, t, _ in fired(platform.root) if t == iso(boundary)}) == 2,
            timeout=boundary - time.time() + 30,
            interval=0.5,
            what="both schedules to fire at the minute",
        )
        runs = {
            r.payload["schedule_id"]: r
            for task in ("every-minute", "per-customer")
            for r in client.runs.list(task=task).data
            if r.payload["timestamp"] == iso(boundary).replace("+00:00", "Z")
        }
        assert set(runs) == {declared.id, customer.id}
        for run in runs.values():
            wait_for(
                lambda run=run: client.runs.retrieve(run.id).status.value == "COMPLETED",
                what=f"run {run.id} to complete",
            )
        assert client.runs.retrieve(runs[customer.id].id).output == {"customer": "acme"}
        # it started at its time, not before (the run was made ahead and waited)
        started = client.runs.retrieve(runs[declared.id].id).started_at
        assert started is not None and started.timestamp() >= boundary

        # the code changes its cron: the same schedule, another time
        write_tasks(platform.root, "0 3 * * *")
        platform.load_changed_code()
        wait_for(
            lambda: client.schedules.retrieve(declared.id).cron == "0 3 * * *",
            what="the schedule to follow the code",
        )
        # the code drops its cron: the declarative schedule goes, the imperative one stays
        write_tasks(platform.root, None)
        platform.load_changed_code()
        wait_for(
            lambda: [s.id for s in client.schedules.list().data] == [customer.id],
            what="the declarative schedule to go",
        )
    per_time = Counter((s, t) for s, t, _ in fired(platform.root))
    assert per_time and set(per_time.values()) == {1}, per_time


def test_two_servers_one_killed_at_fire_time_make_one_run_per_schedule_and_time(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path)
    write_tasks(root, "* * * * *")
    with postgres_schema() as url:
        servers = [ServerProcess(root=root, database_url=url, name=f"s{i}") for i in range(2)]
        worker: WorkerProcess | None = None
        try:
            token = TOKEN.findall(servers[0].start())[0]
            servers[1].start()
            with Client(servers[0].api_url, token) as admin:
                admin.projects.create("Cron")
                key = admin.projects.key("cron", "prod").secret_key
            for server in servers:
                server.secret_key = key
            worker = WorkerProcess(servers[1], "w", executors=4)  # works for the survivor
            worker.start()
            with Client(servers[0].api_url, key) as first:
                made = [
                    first.schedules.create(
                        task="per-customer", cron="* * * * *", external_id=f"customer-{n}"
                    ).id
                    for n in range(150)
                ]
            boundary = next_boundary(margin=LOOKAHEAD + 4)
            # both servers wake LOOKAHEAD before the minute to make its runs; kill one as they do
            time.sleep(max(0.0, boundary - LOOKAHEAD + 0.02 - time.time()))
            assert servers[0].proc is not None
            servers[0].proc.send_signal(signal.SIGKILL)
            with Client(servers[1].api_url, key) as survivor:
                (declared,) = survivor.schedules.list(type="DECLARATIVE").data
                wanted = {(s, iso(boundary)) for s in [*made, declared.id]}
                wait_for(
                    lambda: {(s, t) for s, t, _ in fired(root)} >= wanted,
                    timeout=boundary - time.time() + 60,
                    interval=0.5,
                    what="every schedule to fire at the minute on the surviving server",
                )
                runs = [
                    r
                    for task in ("every-minute", "per-customer")
                    for r in survivor.runs.list(task=task, limit=1000).data
                ]
            per_time = Counter((r.payload["schedule_id"], r.payload["timestamp"]) for r in runs)
            assert len(per_time) == len(wanted) and set(per_time.values()) == {1}, per_time
            executions = Counter((s, t) for s, t, _ in fired(root))
            assert set(executions.values()) == {1}, executions  # and each ran once
        finally:
            if worker is not None:
                worker.stop()
            for server in servers:
                server.stop()
