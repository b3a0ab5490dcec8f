"""Client and AsyncClient against a real uvicorn server over a real SQLite store: the same
surface in both, options and payloads checked before any request, and server errors mapped
back to Conveyor's error classes."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from conveyor.client import AsyncClient, Client, RunPage
from conveyor.errors import (
    ApiError,
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadError,
)
from conveyor.models import RunStatus, TriggerOptions
from conveyor.protocol import JournalCall, LogEntry
from conveyor.results import BatchHandle, RunHandle
from conveyor.sdk.queue import queue
from tests.integration.conftest import held, holder

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")


class Color(Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    at: datetime


@pytest.fixture
def client(live_server: str, backend: Backend) -> Any:
    with Client(live_server, backend.key) as c:
        yield c


def run_count(backend: Backend) -> int:
    return len(backend.engine.runs.list(backend.env.id, limit=1000)[0])


def complete_soon(
    backend: Backend, run_id: str, delay: float, output: str = '{"done":true}'
) -> threading.Thread:
    """A stand-in worker: after `delay`, lease the run and report it completed."""

    def work() -> None:
        time.sleep(delay)
        leased = backend.engine.workers.lease(backend.env.id, "worker-1", capacity=100).attempts
        (spec,) = [s for s in leased if s.run_id == run_id]
        backend.engine.workers.complete(
            "worker-1",
            [held(backend.engine, run_id, spec.attempt, "completed", output_json=output)],
        )

    thread = threading.Thread(target=work)
    thread.start()
    return thread


# -- Client (sync) ----------------------------------------------------------------------------


def test_trigger_and_retrieve(client: Client) -> None:
    handle = client.trigger("hello", {"name": "Ada"}, tags=["a"], metadata={"k": [1, 2]})
    assert isinstance(handle, RunHandle)
    assert (handle.task_id, handle.is_cached) == ("hello", False)
    run = client.runs.retrieve(handle.id)
    assert run.id == handle.id
    assert run.status is RunStatus.QUEUED
    assert (run.payload, run.tags, run.metadata) == ({"name": "Ada"}, ["a"], {"k": [1, 2]})
    assert run.attempt_list == []


def test_payload_conversions_match_the_sdk(client: Client) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    handle = client.tasks.trigger(
        "hello", {"p": Point(x=1, at=when), "when": when, "c": Color.RED, "t": (1, 2)}
    )
    assert client.runs.retrieve(handle.id).payload == {
        "p": {"x": 1, "at": "2030-01-02T03:04:05Z"},
        "when": "2030-01-02T03:04:05+00:00",
        "c": "red",
        "t": [1, 2],
    }


def test_a_payload_that_is_not_json_is_refused_before_any_request(
    client: Client, backend: Backend
) -> None:
    with pytest.raises(
        PayloadError, match=r"payload\.items is a set, which is not JSON; use a list"
    ):
        client.trigger("hello", {"items": {1, 2}})
    with pytest.raises(PayloadError, match=r"payload\.f is nan"):
        client.trigger("hello", {"f": float("nan")})
    with pytest.raises(PayloadError, match=r"items\[1\]\.payload is a object"):
        client.batch_trigger("hello", [{"payload": 1}, {"payload": object()}])
    with pytest.raises(PayloadError, match=r"options\.metadata\.x is a set"):
        client.trigger("hello", {}, metadata={"x": {1}})
    assert run_count(backend) == 0


def test_invalid_options_are_refused_before_any_request(client: Client, backend: Backend) -> None:
    with pytest.raises(
        InvalidRequest, match=r"priority: Input should be greater than or equal to 0"
    ):
        client.trigger("hello", {}, priority=-1)
    with pytest.raises(InvalidRequest, match=r"unknown trigger option 'prioritty'.*priority"):
        client.trigger("hello", {}, prioritty=1)
    with pytest.raises(InvalidRequest, match=r"items\[0\]: .*machine"):
        client.batch_trigger("hello", [{"payload": 1, "options": {"machine": "huge"}}])
    with pytest.raises(InvalidRequest, match=r"items\[0\] must be a dict"):
        client.batch_trigger("hello", [{"payload": 1, "opts": {}}])
    with pytest.raises(InvalidRequest, match="1 to 1000 items"):
        client.batch_trigger("hello", [])
    assert run_count(backend) == 0


def test_options_as_keywords_dicts_or_models(client: Client) -> None:
    emails = queue("emails", concurrency_limit=4)
    a = client.runs.retrieve(client.trigger("hello", 1, queue=emails, delay=60, priority=5).id)
    assert (a.queue, a.priority, a.status) == ("emails", 5, RunStatus.DELAYED)
    assert client.queues.retrieve("emails").concurrency_limit == 4
    b = client.runs.retrieve(client.trigger("hello", 2, options={"tags": ["x"]}, max_attempts=9).id)
    assert (b.tags, b.max_attempts) == (["x"], 9)
    c = client.runs.retrieve(
        client.trigger("hello", 3, options=TriggerOptions.model_validate({"machine": "micro"})).id
    )
    assert c.machine == "micro"
    # what conveyor.sdk.task passes: options already reduced to JSON
    json_opts = TriggerOptions.model_validate(
        {"delay": datetime(2031, 1, 1, tzinfo=UTC), "queue": "q/json"}
    ).model_dump(mode="json", exclude_defaults=True)
    d = client.runs.retrieve(client.tasks.trigger("hello", 4, **json_opts).id)
    assert d.queue == "q/json"
    assert d.delayed_until == datetime(2031, 1, 1, tzinfo=UTC)


def test_batch_of_fifty(client: Client) -> None:
    batch = client.batch_trigger(
        "hello", [{"payload": {"n": n}, "options": {"tags": ["batch"]}} for n in range(50)]
    )
    assert isinstance(batch, BatchHandle)
    assert len(batch.runs) == 50
    assert len({h.id for h in batch.runs}) == 50
    assert client.runs.retrieve(batch.runs[7].id).payload == {"n": 7}
    assert len(client.runs.list(tag="batch", limit=100)) == 50


def test_idempotency_key_returns_the_same_run(client: Client) -> None:
    first = client.trigger("hello", {"a": 1}, idempotency_key="charge-1")
    second = client.trigger("hello", {"a": 1}, idempotency_key="charge-1")
    assert second.id == first.id
    assert (first.is_cached, second.is_cached) == (False, True)


def test_list_pages_with_a_cursor(client: Client) -> None:
    made = [client.trigger("hello", n).id for n in range(25)]
    page = client.runs.list(limit=10)
    assert isinstance(page, RunPage)
    seen: list[str] = []
    while True:
        seen.extend(run.id for run in page)  # a page iterates its runs
        if not page.has_more:
            break
        page = client.runs.list(limit=10, cursor=page.next_cursor)
    assert seen == list(reversed(made))


def test_list_filters(client: Client, backend: Backend) -> None:
    a = client.trigger("hello", 1, tags=["red"]).id
    b = client.trigger("other", 2).id
    client.runs.cancel(b)
    assert [r.id for r in client.runs.list(task="hello")] == [a]
    assert [r.id for r in client.runs.list(tag="red")] == [a]
    assert [r.id for r in client.runs.list(status=RunStatus.CANCELED)] == [b]
    assert {r.id for r in client.runs.list(status=["CANCELED", "QUEUED"])} == {a, b}
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    assert client.runs.list(created_from=future).data == []
    assert len(client.runs.list(created_to=future, created_from=0)) == 2
    with pytest.raises(InvalidRequest, match="SLEEPING"):
        client.runs.list(status="SLEEPING")
    with pytest.raises(InvalidRequest, match="limit"):
        client.runs.list(limit=0)


def test_cancel_replay_and_logs(client: Client, backend: Backend) -> None:
    handle = client.trigger("hello", {"v": 1})
    canceled = client.runs.cancel(handle.id)
    assert canceled.status is RunStatus.CANCELED
    with pytest.raises(Conflict, match="already ended CANCELED"):
        client.runs.cancel(handle.id)

    same = client.runs.replay(handle.id)
    assert same.id != handle.id
    assert client.runs.retrieve(same.id).payload == {"v": 1}
    new = client.runs.replay(handle.id, {"v": 2})
    assert client.runs.retrieve(new.id).payload == {"v": 2}
    null = client.runs.replay(handle.id, None)
    assert client.runs.retrieve(null.id).payload is None

    backend.engine.workers.append_logs([LogEntry(handle.id, 1, 0, time.time(), "info", "hi", None)])
    assert [line.message for line in client.runs.logs(handle.id)] == ["hi"]


def test_trace_of_a_run(client: Client, backend: Backend) -> None:
    handle = client.trigger("hello", {})
    backend.engine.workers.lease(backend.env.id, "worker-1", 1)
    backend.engine.durable.call(
        backend.env.id,
        handle.id,
        JournalCall("step:s#1", 1),
        **holder(backend.engine, handle.id),
    )
    trace = client.runs.trace(handle.id)
    assert trace.run_id == handle.id
    assert [(s.kind, [c.name for c in s.children]) for s in trace.root.children] == [
        ("attempt", ["step s"])
    ]
    with pytest.raises(NotFound):
        client.runs.trace("run_nope")


def test_poll_returns_the_run_once_it_ends(client: Client, backend: Backend) -> None:
    handle = client.trigger("hello", {})
    worker = complete_soon(backend, handle.id, delay=0.3)
    started = time.monotonic()
    run = client.runs.poll(handle.id, interval=0.05, timeout=10)
    worker.join()
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"done": True}
    assert time.monotonic() - started >= 0.25


def test_poll_times_out(client: Client) -> None:
    handle = client.trigger("hello", {})
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"run {handle.id} is still QUEUED after 0.3s"):
        client.runs.poll(handle.id, interval=0.05, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3


def test_tasks_and_queues(client: Client) -> None:
    assert {t.id for t in client.tasks.list()} == {"hello", "other", "encode", "process-video"}
    assert client.tasks.retrieve("process-video").payload_schema is not None
    assert "media/encode" in {q.name for q in client.queues.list()}
    assert client.queues.pause("media/encode").paused is True
    assert client.queues.retrieve("media/encode").paused is True
    assert client.queues.resume("media/encode").paused is False
    assert client.queues.set_concurrency("media/encode", 7).concurrency_limit == 7
    cleared = client.queues.set_concurrency("media/encode", None)
    assert (cleared.concurrency_limit, cleared.override_limit) == (cleared.code_limit, None)
    with pytest.raises(InvalidRequest, match="whole number"):
        client.queues.set_concurrency("media/encode", -3)


def test_server_errors_map_to_conveyor_errors(
    client: Client, live_server: str, backend: Backend
) -> None:
    with pytest.raises(NotFound, match="'nope' is not defined"):
        client.trigger("nope", {})
    with pytest.raises(NotFound, match="run run_missing not found"):
        client.runs.retrieve("run_missing")
    with pytest.raises(NotFound, match="queue 'nope' not found"):
        client.queues.pause("nope")
    with pytest.raises(PayloadError, match="video_url"):
        client.trigger("process-video", {"format": "mp4"})
    assert run_count(backend) == 0
    with (
        Client(live_server, "cv_dev_wrong") as stranger,
        pytest.raises(AuthenticationError, match="unknown API key"),
    ):
        stranger.runs.list()
    with pytest.raises(InvalidRequest, match="run id must be a non-empty string"):
        client.runs.retrieve("")


def test_an_unreachable_server_is_a_clear_error(free_url: str) -> None:
    with (
        Client(free_url, "cv_dev_x") as c,
        pytest.raises(
            ApiError,
            match=f"cannot reach Conveyor at {free_url}: "
            r"is `conveyor dev` running\?",
        ),
    ):
        c.runs.list()


def test_queue_names_with_slashes_and_odd_characters(client: Client) -> None:
    client.trigger("hello", 1, queue="team a/jobs?x=1#frag")
    assert client.queues.retrieve("team a/jobs?x=1#frag").queued == 1
    assert client.queues.pause("team a/jobs?x=1#frag").paused is True


# -- AsyncClient ------------------------------------------------------------------------------


def test_async_client_has_the_same_surface(live_server: str, backend: Backend) -> None:
    async def main() -> None:
        async with AsyncClient(live_server, backend.key) as c:
            handle = await c.trigger("hello", {"a": 1}, tags=["async"])
            run = await c.runs.retrieve(handle.id)
            assert (run.payload, run.tags) == ({"a": 1}, ["async"])
            batch = await c.tasks.batch_trigger("hello", [{"payload": i} for i in range(3)])
            assert len(batch.runs) == 3
            page = await c.runs.list(tag="async")
            assert [r.id for r in page] == [handle.id]
            assert len(await c.tasks.list()) == 4
            assert (await c.queues.pause("task/hello")).paused is True
            await c.queues.resume("task/hello")
            replayed = await c.runs.replay(handle.id)
            assert (await c.runs.cancel(replayed.id)).status is RunStatus.CANCELED
            with pytest.raises(Conflict):
                await c.runs.cancel(replayed.id)
            with pytest.raises(NotFound):
                await c.tasks.retrieve("nope")
            keyed = await c.trigger("hello", {}, idempotency_key="async-1")
            assert await c.idempotency_keys.reset("hello", "async-1") is True
            assert (await c.trigger("hello", {}, idempotency_key="async-1")).id != keyed.id
            with pytest.raises(InvalidRequest, match="non-empty text"):
                await c.idempotency_keys.reset("hello", "")
            with pytest.raises(PayloadError):
                await c.trigger("hello", {"bad": {1}})
            worker = complete_soon(backend, batch.runs[0].id, delay=0.2)
            done = await c.runs.poll(batch.runs[0].id, interval=0.05, timeout=10)
            worker.join()
            assert done.status is RunStatus.COMPLETED
            with pytest.raises(TimeoutError):
                await c.runs.poll(batch.runs[1].id, interval=0.05, timeout=0.2)
            assert await c.runs.logs(handle.id) == []
            assert (await c.runs.trace(batch.runs[0].id)).root.status == "ok"

    asyncio.run(main())


def test_async_client_unreachable(free_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(free_url, "cv_dev_x") as c:
            with pytest.raises(ApiError, match="cannot reach Conveyor"):
                await c.runs.retrieve("run_x")

    asyncio.run(main())


def test_tokens_list_json_has_the_shape_of_runs_list(live_server: str, backend: Backend) -> None:
    import json

    from click.testing import CliRunner

    from conveyor.cli.main import main

    for _ in range(3):
        backend.engine.waitpoints.create_token(backend.env.id)
    args = ["--api-url", live_server, "--secret-key", backend.key, "--json"]
    tokens = json.loads(CliRunner().invoke(main, ["tokens", "list", "--limit", "2", *args]).output)
    runs = json.loads(CliRunner().invoke(main, ["runs", "list", *args]).output)
    assert set(tokens) == set(runs) == {"data", "next_cursor"}
    assert len(tokens["data"]) == 2 and tokens["next_cursor"]
    with Client(live_server, backend.key) as client:
        rest = client.waitpoints.list_tokens(limit=2, cursor=tokens["next_cursor"])
        assert (
            len(rest) == 1
            and rest.next_cursor is None
            and rest[0].id not in {t["id"] for t in tokens["data"]}
        )


def test_cli_lists_keep_ids_and_names_whole_and_pipe_plain_rows(
    live_server: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from conveyor.cli import output
    from conveyor.cli.main import main
    from conveyor.models import TriggerOptions
    from conveyor.protocol import Heartbeat, LogEntry
    from tests.integration.conftest import holder

    engine, env = backend.engine, backend.env
    run = engine.tasks.trigger(
        env.id, "hello", {}, TriggerOptions(tags=["a-rather-long-tag-" + "x" * 60])
    )
    engine.workers.heartbeat("worker-1", Heartbeat())
    engine.workers.lease(env.id, "worker-1", 1)
    url = (
        "http://127.0.0.1:3030/api/v1/waitpoints/tokens/token_" + "z" * 60 + "/callback/" + "s" * 64
    )
    engine.workers.append_logs(
        [
            LogEntry(
                run.id,
                1,
                1,
                1.0,
                "info",
                "token",
                {"url": url, "name": "Über"},
                fence=holder(engine, run.id)["fence"],
            )
        ]
    )
    args = ["--api-url", live_server, "--secret-key", backend.key]
    piped = CliRunner().invoke(main, ["runs", "list", *args], env={"COLUMNS": "60"}).output
    header, row = piped.splitlines()[:2]
    assert header.split() == ["ID", "TASK", "STATUS", "CREATED", "TOOK", "TRIES", "TAGS"]
    assert (
        run.id in row and "hello" in row and "a-rather-long-tag-" + "x" * 60 in row
    )  # nothing cut or dropped
    logs = CliRunner().invoke(main, ["runs", "logs", run.id, *args], env={"COLUMNS": "60"}).output
    assert url in logs and '"Über"' in logs  # one line: the URL can be copied; non-ASCII as written

    screen = io.StringIO()
    monkeypatch.setattr(
        output,
        "console",
        lambda: Console(
            file=screen, force_terminal=True, width=80, highlight=False, soft_wrap=False
        ),
    )
    with Client(live_server, backend.key) as client:
        output.render_run_list(list(client.runs.list()), None)
    first = next(line for line in screen.getvalue().splitlines() if run.id in line)
    assert (
        "hello" in first and "…" in first
    )  # at 80 columns the tags are cut, not the id or the task
