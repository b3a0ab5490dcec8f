"""OpenTelemetry export on both topologies, received by a real OTLP/HTTP receiver (tests/otlp.py,
decoded with opentelemetry-proto): runs, attempts, steps, waits, triggers and tokens as spans of
one trace with the right parents and attributes, a child run in its parent's trace, task logs as
log records in the attempt's span, a trigger made inside a span (a FastAPI request instrumented by
its own instrumentation, a span of the backend's tracer) continuing that trace, an instrumentation
named in the config enabled in executors, and a retry after a kill -9 joining the same trace.

`dev` reads `[tool.conveyor.telemetry]` from the project's file; the team's workers have only the
`OTEL_*` variables (the file names the instrumentation, not the exporter).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Client
from conveyor.telemetry import attempt_span_id, run_span_id, run_trace_id
from tests.databases import postgres_schema
from tests.e2e.conftest import DevServer, TeamPlatform, free_port, make_project, wait_for
from tests.otlp import Receiver, Span

TASKS = """
import asyncio
import logging
import os

import httpx

from conveyor import logger, step, task, wait


@task(id="otel-child", retry={"max_attempts": 1})
async def otel_child(payload, ctx):
    logger.info("child says", n=payload["n"])
    return {"doubled": payload["n"] * 2}


@task(id="otel-parent", retry={"max_attempts": 1})
async def otel_parent(payload, ctx):
    logger.info("parent starts", user="ada", secret=os.environ.get("OTEL_E2E_SECRET", ""))
    print("a printed line")
    logging.getLogger("app").warning("a warning from logging")
    value = await step.run("double", lambda: payload["n"] * 2)
    await wait.for_(seconds=0.1)
    child = await otel_child.trigger_and_wait({"n": value})
    if payload.get("url"):
        async with httpx.AsyncClient() as http:
            await http.get(payload["url"])
    return child.unwrap()


@task(id="otel-failing", retry={"max_attempts": 1})
async def otel_failing(payload, ctx):
    await step.run("explode", _explode)


def _explode():
    raise ValueError("the step broke")


@task(id="otel-token", retry={"max_attempts": 1})
async def otel_token(payload, ctx):
    token = await wait.create_token(timeout="1m")
    await wait.complete_token(token.id, {"approved": True})
    result = await wait.for_token(token)
    return {"ok": result.ok}


@task(id="otel-approval", retry={"max_attempts": 1})
async def otel_approval(payload, ctx):
    token = await wait.create_token(timeout="1m")
    logger.info("token", token_id=token.id)
    result = await wait.for_token(token)  # suspends: the run waits without a process
    logger.info("approved", ok=result.ok)
    return {"ok": result.ok}


@task(id="otel-crash", retry={"max_attempts": 3, "min_timeout_ms": 100, "max_timeout_ms": 200})
async def otel_crash(payload, ctx):
    if ctx.attempt.number == 1:
        logger.info("pid", pid=os.getpid())
        await asyncio.sleep(60)
    return {"attempt": ctx.attempt.number}
"""

DEV_TELEMETRY = """
[tool.conveyor.telemetry]
exporter = "otlp"
endpoint = "{url}"
headers = {{ "x-e2e" = "dev" }}
service_name = "otel-e2e-dev"
instrumentations = ["httpx"]
"""

TEAM_TELEMETRY = """
[tool.conveyor.telemetry]
instrumentations = ["httpx"]
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _project(tmp: Path, telemetry: str) -> Path:
    root = make_project(tmp)
    (root / "tasks" / "otel.py").write_text(TASKS)
    with (root / "pyproject.toml").open("a") as f:
        f.write(telemetry)
    return root


@pytest.fixture(scope="module", params=["dev", "team"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[DevServer | TeamPlatform]:
    tmp = tmp_path_factory.mktemp(f"otel-{request.param}")
    secret = {"OTEL_E2E_SECRET": "sk-otel-e2e-secret-value"}
    if request.param == "dev":
        root = _project(tmp, DEV_TELEMETRY.format(url=receiver.url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        dev = DevServer(root, free_port(), env=env | secret)
        try:
            dev.start()
            with dev.client() as c:
                c.envvars.set("OTEL_E2E_SECRET", secret["OTEL_E2E_SECRET"])
            yield dev
        finally:
            dev.stop()
        return
    root = _project(tmp, TEAM_TELEMETRY)
    with postgres_schema() as url:
        team = TeamPlatform(root, url, project="Otel", worker_timeout=3)
        for worker in team.workers:
            worker.env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                "OTEL_SERVICE_NAME": "otel-e2e-team",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-e2e=team",
            }
        try:
            team.start()
            with team.client() as c:
                c.envvars.set("OTEL_E2E_SECRET", secret["OTEL_E2E_SECRET"])
            yield team
        finally:
            team.stop()


@pytest.fixture(scope="module")
def client(platform: DevServer | TeamPlatform) -> Iterator[Client]:
    with platform.client() as c:
        yield c


def _one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def _by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def test_a_run_its_steps_waits_child_and_logs_form_one_trace(
    client: Client, receiver: Receiver, platform: DevServer | TeamPlatform
) -> None:
    handle = client.trigger("otel-parent", {"n": 21})
    run = client.runs.poll(handle.id, timeout=30)
    assert run.status == "COMPLETED", run.error
    (child_id,) = [
        r.id for r in client.runs.list(task="otel-child", limit=100).data if r.parent_id == run.id
    ]

    def complete(spans: list[Span]) -> bool:
        names = {s.name for s in spans if s.attributes.get("conveyor.run.id") in (run.id, child_id)}
        return {"run otel-parent", "run otel-child"} <= names

    spans = receiver.wait_spans(complete, what="the parent's and the child's run spans")
    ours = receiver.run_spans(run.id)
    parent_run = _one(ours, "run otel-parent")
    attempt = _one(ours, "attempt otel-parent")
    step = _one(ours, "step double")
    waited = _one(ours, "wait.for")
    trigger = _one(ours, "trigger_and_wait otel-child")
    trace = f"{run_trace_id(run.id):032x}"  # triggered outside any span: a trace of its own

    assert {s.trace_id for s in ours} == {trace}
    assert parent_run.span_id == f"{run_span_id(run.id):016x}" and parent_run.parent_span_id == ""
    assert attempt.span_id == f"{attempt_span_id(run.id, 1):016x}"
    assert attempt.parent_span_id == parent_run.span_id
    for child in (step, waited, trigger):
        assert child.parent_span_id == attempt.span_id, child.name
    assert parent_run.status_code == 1 and attempt.status_code == 1  # OK
    assert parent_run.start <= attempt.start <= step.start <= step.end <= waited.start
    assert waited.end <= trigger.start <= trigger.end <= attempt.end
    assert trigger.attributes["conveyor.trigger.run_ids"] == [child_id]
    env = "dev" if isinstance(platform, DevServer) else "prod"
    for span in (parent_run, attempt, step):
        assert span.attributes["conveyor.run.id"] == run.id
        assert span.attributes["conveyor.task.id"] == "otel-parent"
        assert span.attributes["conveyor.environment"] == env
        assert span.attributes["conveyor.queue"] == "otel-parent"
    assert attempt.attributes["conveyor.attempt"] == 1
    assert parent_run.attributes["conveyor.run.status"] == "COMPLETED"
    service = "otel-e2e-dev" if isinstance(platform, DevServer) else "otel-e2e-team"
    assert parent_run.resource["service.name"] == service
    assert {h.get("x-e2e") for h in receiver.headers} >= {"dev" if env == "dev" else "team"}

    # the child run: the same trace, under the trigger's span
    theirs = [s for s in spans if s.attributes.get("conveyor.run.id") == child_id]
    child_run = _one(theirs, "run otel-child")
    child_attempt = _one(theirs, "attempt otel-child")
    assert {s.trace_id for s in theirs} == {trace}
    assert child_run.parent_span_id == trigger.span_id
    assert child_attempt.parent_span_id == child_run.span_id
    assert child_run.attributes["conveyor.parent.id"] == run.id

    # the logs: in the attempt's span, severity mapped, attributes kept, secrets redacted
    logs = receiver.wait_logs(
        lambda logs: sum(r.attributes.get("conveyor.run.id") == run.id for r in logs) >= 3,
        what="the parent's three log lines",
    )
    mine = {r.body: r for r in logs if r.attributes.get("conveyor.run.id") == run.id}
    starts = mine["parent starts"]
    assert starts.trace_id == trace and starts.span_id == attempt.span_id
    assert starts.severity_text == "INFO" and starts.severity_number == 9
    assert starts.attributes["user"] == "ada" and starts.attributes["conveyor.attempt"] == 1
    assert starts.attributes["secret"] == "[redacted]"
    assert mine["a printed line"].span_id == attempt.span_id
    assert mine["a warning from logging"].severity_number == 13
    child_log = next(r for r in logs if r.body == "child says" and r.trace_id == trace)
    assert child_log.span_id == child_attempt.span_id and child_log.attributes["n"] == 42


def test_an_instrumentation_named_in_the_config_runs_in_executors(
    client: Client, receiver: Receiver, platform: DevServer | TeamPlatform
) -> None:
    url = f"{platform.api_url}/api/v1/health"  # any URL answering on this machine
    handle = client.trigger("otel-parent", {"n": 1, "url": url})
    assert client.runs.poll(handle.id, timeout=30).status == "COMPLETED"
    spans = receiver.wait_spans(
        lambda spans: any(s.name == "run otel-parent" for s in receiver.run_spans(handle.id)),
        what="the run's span",
    )
    attempt = _one(receiver.run_spans(handle.id), "attempt otel-parent")
    http = [s for s in spans if s.parent_span_id == attempt.span_id and s.name == "GET"]
    assert len(http) == 1, [s.name for s in spans if s.trace_id == attempt.trace_id]
    assert "httpx" in http[0].scope and http[0].trace_id == attempt.trace_id


def test_a_failing_step_and_tokens_are_spans(client: Client, receiver: Receiver) -> None:
    failing = client.trigger("otel-failing", {})
    token = client.trigger("otel-token", {})
    assert client.runs.poll(failing.id, timeout=30).status == "FAILED"
    assert client.runs.poll(token.id, timeout=30).output == {"ok": True}
    receiver.wait_spans(
        lambda _: (
            {"run otel-failing", "run otel-token"}
            <= {s.name for s in receiver.run_spans(failing.id) + receiver.run_spans(token.id)}
        ),
        what="both run spans",
    )
    failed = receiver.run_spans(failing.id)
    step = _one(failed, "step explode")
    assert step.status_code == 2 and "ValueError" in step.status_message
    assert any(
        name == "exception" and attrs["exception.type"] == "ValueError"
        for name, attrs in step.events
    )
    run_span = _one(failed, "run otel-failing")
    assert run_span.status_code == 2 and run_span.attributes["conveyor.run.status"] == "FAILED"
    assert _one(failed, "attempt otel-failing").status_code == 2
    tokens = receiver.run_spans(token.id)
    attempt = _one(tokens, "attempt otel-token")
    for name in ("token.create", "token.complete", "wait.for_token"):
        assert _one(tokens, name).parent_span_id == attempt.span_id
    assert _one(tokens, "token.complete").attributes["conveyor.token_id"]


def test_a_trigger_inside_a_span_continues_its_trace(
    client: Client, receiver: Receiver, platform: DevServer | TeamPlatform
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = FastAPI()

    @app.post("/signup")
    def signup() -> dict[str, str]:
        return {"run": client.trigger("otel-child", {"n": 5}).id}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    with TestClient(app) as http:
        run_id = http.post("/signup").json()["run"]
    server = next(s for s in exported.get_finished_spans() if s.kind.name == "SERVER")
    assert client.runs.poll(run_id, timeout=30).status == "COMPLETED"

    # a span of the backend's own tracer, with a tracestate
    with provider.get_tracer("backend").start_as_current_span("nightly-job") as job:
        handle = client.batch_trigger("otel-child", [{"payload": {"n": 1}}])
    batch_run = handle.runs[0].id
    assert client.runs.poll(batch_run, timeout=30).status == "COMPLETED"

    # from any language: the `traceparent` header an instrumented HTTP client sends
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    answer = httpx.post(
        f"{platform.api_url}/api/v1/tasks/otel-child/trigger",
        json={"payload": {"n": 2}},
        headers={"Authorization": f"Bearer {platform.secret_key}", "traceparent": parent},
        timeout=10,
    )
    header_run = answer.json()["id"]
    assert client.runs.poll(header_run, timeout=30).status == "COMPLETED"

    receiver.wait_spans(
        lambda _: all(
            any(s.name == "run otel-child" for s in receiver.run_spans(r))
            for r in (run_id, batch_run, header_run)
        ),
        what="the three run spans",
    )
    header_span = _one(receiver.run_spans(header_run), "run otel-child")
    assert (header_span.trace_id, header_span.parent_span_id) == ("ab" * 16, "cd" * 8)
    run_span = _one(receiver.run_spans(run_id), "run otel-child")
    assert run_span.trace_id == f"{server.context.trace_id:032x}"
    assert run_span.parent_span_id == f"{server.context.span_id:016x}"
    assert _one(receiver.run_spans(run_id), "attempt otel-child").trace_id == run_span.trace_id
    batch_span = _one(receiver.run_spans(batch_run), "run otel-child")
    assert batch_span.trace_id == f"{job.get_span_context().trace_id:032x}"
    assert batch_span.parent_span_id == f"{job.get_span_context().span_id:016x}"
    assert batch_span.attributes["conveyor.batch.id"] == handle.batch_id


def test_an_attempt_suspended_and_resumed_is_one_span_over_both_executions(
    client: Client, receiver: Receiver
) -> None:
    handle = client.trigger("otel-approval", {})
    token_id = wait_for(
        lambda: next(
            (r.attributes["token_id"] for r in client.runs.logs(handle.id) if r.message == "token"),
            None,
        ),
        what="the token",
    )
    wait_for(lambda: client.runs.retrieve(handle.id).status == "WAITING", what="the suspension")
    client.waitpoints.complete_token(token_id, {"approved": True})
    assert client.runs.poll(handle.id, timeout=30).output == {"ok": True}
    receiver.wait_spans(
        lambda _: any(s.name == "run otel-approval" for s in receiver.run_spans(handle.id)),
        what="the run span",
    )
    spans = receiver.run_spans(handle.id)
    attempt = _one(spans, "attempt otel-approval")  # one, though two executions ran it
    assert attempt.span_id == f"{attempt_span_id(handle.id, 1):016x}"
    waited = _one(spans, "wait.for_token")  # made once: the resumed execution replays it
    _one(spans, "token.create")
    assert waited.parent_span_id == attempt.span_id
    assert waited.attributes["conveyor.interrupted"] is True  # the execution ended there
    assert attempt.start <= waited.start <= waited.end <= attempt.end
    assert attempt.attributes["conveyor.attempt.resumed"] is True
    logs = receiver.wait_logs(
        lambda logs: any(
            r.body == "approved" and r.attributes["conveyor.run.id"] == handle.id for r in logs
        ),
        what="the line after the resume",
    )
    lines = [r for r in logs if r.attributes.get("conveyor.run.id") == handle.id]
    assert sorted(r.body for r in lines) == ["approved", "token"]  # none written twice
    assert {r.span_id for r in lines} == {attempt.span_id}


def test_the_retry_after_a_kill_9_joins_the_same_trace(
    client: Client, receiver: Receiver, platform: DevServer | TeamPlatform
) -> None:
    handle = client.trigger("otel-crash", {})
    pid = wait_for(
        lambda: next(
            (r.attributes["pid"] for r in client.runs.logs(handle.id) if r.message == "pid"), None
        ),
        what="the first attempt's pid",
    )
    # what the attempt logged reaches the receiver within the export delay; a kill -9 loses
    # only what was not sent yet
    receiver.wait_logs(
        lambda logs: any(
            r.body == "pid" and r.attributes["conveyor.run.id"] == handle.id for r in logs
        ),
        what="the first attempt's line",
    )
    if isinstance(platform, TeamPlatform):  # the worker holding it, with its executors
        holder = next(w for w in platform.workers if w.proc and pid in _descendants(w.proc.pid))
        holder.kill9()
    else:
        os.kill(pid, signal.SIGKILL)
    try:
        run = client.runs.poll(handle.id, timeout=60)
    finally:
        if isinstance(platform, TeamPlatform):
            holder.start()
    assert run.status == "COMPLETED" and run.output["attempt"] >= 2
    receiver.wait_spans(
        lambda _: any(s.name == "run otel-crash" for s in receiver.run_spans(handle.id)),
        what="the run span",
    )
    spans = receiver.run_spans(handle.id)
    run_span = _one(spans, "run otel-crash")
    attempt = _one(spans, "attempt otel-crash")  # the killed attempt wrote none
    assert attempt.attributes["conveyor.attempt"] == run.output["attempt"]
    assert attempt.parent_span_id == run_span.span_id
    assert {s.trace_id for s in spans} == {f"{run_trace_id(handle.id):032x}"}
    first = next(
        r for r in receiver.logs if r.body == "pid" and r.attributes["conveyor.run.id"] == handle.id
    )
    assert first.trace_id == run_span.trace_id
    assert first.span_id == f"{attempt_span_id(handle.id, 1):016x}"


def _descendants(pid: int) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(pid).children(recursive=True)}


def test_a_bad_telemetry_config_is_one_clear_line(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    with (root / "pyproject.toml").open("a") as f:
        f.write('\n[tool.conveyor.telemetry]\nexporter = "otlp"\ninstrumentations = ["nope"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(free_port())],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "tool.conveyor.telemetry.instrumentations names nope" in lines[0]
    assert "Traceback" not in done.stderr

    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace('["nope"]', "[]")
    )
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "dev", "--port", str(free_port())],
        cwd=root,
        env=env | {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[0], lines
