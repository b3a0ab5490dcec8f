"""The MCP tools get_run_metadata and read_run_stream with the `mcp` SDK's own client, against a
real server (uvicorn over SQLite and PostgreSQL): a run's metadata and tags as its code left
them, pretty in the text; a stream's chunks so far while it is open, then every chunk once it
ended, its text chunks joined; waiting for the end with a bounded timeout; and bad input a tool
error naming the argument."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.models import TriggerOptions
from conveyor.protocol import Heartbeat, MetadataCall, MetadataOp, StreamCall
from tests.integration.conftest import holder
from tests.integration.mcp_tools import call, refused, session

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("isolated_settings")]


def executing(backend: Backend, **options: Any) -> str:
    """A run of `hello` leased by worker-1, as a worker holds it while its code runs."""
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {}, TriggerOptions(**options))
    backend.engine.workers.heartbeat("worker-1", Heartbeat())
    leased = backend.engine.workers.lease(backend.env.id, "worker-1", 10).attempts
    assert run.id in [a.run_id for a in leased]
    return run.id


def write(backend: Backend, run_id: str, call: MetadataCall | StreamCall) -> None:
    """A durable call of the run's code, as its worker relays it."""
    backend.engine.durable.call(backend.env.id, run_id, call, **holder(backend.engine, run_id))


async def test_the_metadata_and_tags_a_run_reports_are_read(platform: Backend) -> None:
    run_id = executing(platform, tags=["user-42"])
    ops = [
        MetadataOp(1, "self", "set", "total", 10),
        MetadataOp(2, "self", "increment", "done", 3),
        MetadataOp(3, "self", "append", "files", "a.mp3"),
        MetadataOp(4, "self", "tag", "tags", "batch-7"),
    ]
    write(platform, run_id, MetadataCall(ops))
    async with session() as client:
        found, text = await call(client, "get_run_metadata", run_id=run_id)
        details, details_text = await call(client, "get_run_details", run_id=run_id)
    assert found["metadata"] == {"total": 10, "done": 3, "files": ["a.mp3"]}
    assert found["run"]["tags"] == ["user-42", "batch-7"] and found["environment"] == "dev"
    assert found["run"]["status"] == "EXECUTING" and found["metadata_bytes"] > 20
    assert "tags: user-42, batch-7" in text
    assert '"done": 3' in text and '  "files": [\n    "a.mp3"\n  ]' in text  # pretty
    assert details["run"]["metadata"]["done"] == 3 and 'metadata: {"total": 10' in details_text


async def test_a_run_without_metadata_says_how_a_run_sets_it(platform: Backend) -> None:
    run_id = executing(platform)
    async with session() as client:
        found, text = await call(client, "get_run_metadata", run_id=run_id)
    assert found["metadata"] == {} and found["metadata_bytes"] == 2
    assert "metadata: none yet" in text and "metadata.set" in text


async def test_a_stream_is_read_so_far_then_whole_once_it_ended(platform: Backend) -> None:
    run_id = executing(platform)
    write(platform, run_id, StreamCall("llm", 0, ["Hello", ", "]))
    async with session() as client:
        started = time.monotonic()
        open_, text = await call(client, "read_run_stream", run_id=run_id, stream="llm")
        assert time.monotonic() - started < 8  # "so far" does not wait for the end
        assert open_["chunks"] == ["Hello", ", "] and open_["text"] == "Hello, "
        assert open_["ended"] is False and open_["run_status"] == "EXECUTING"
        assert "2 chunks in stream 'llm'" in text and "still open" in text

        write(platform, run_id, StreamCall("llm", 2, ["world", "!"], done=True))
        whole, text = await call(client, "read_run_stream", run_id=run_id, stream="llm")
    assert whole["ended"] is True and whole["chunk_count"] == 4
    assert whole["text"] == "Hello, world!" and text.endswith("ended.\nHello, world!")


async def test_json_chunks_are_listed_one_a_line(platform: Backend) -> None:
    run_id = executing(platform)
    chunks = [{"step": 1, "of": 2}, {"step": 2, "of": 2}]
    write(platform, run_id, StreamCall("progress", 0, chunks, done=True))
    async with session() as client:
        found, text = await call(client, "read_run_stream", run_id=run_id, stream="progress")
    assert found["chunks"] == chunks and found["text"] is None
    assert text.splitlines()[1:] == ['{"step": 1, "of": 2}', '{"step": 2, "of": 2}']


async def test_waiting_reads_until_the_stream_ends(platform: Backend) -> None:
    run_id = executing(platform)
    write(platform, run_id, StreamCall("llm", 0, ["a"]))

    def finish_later() -> None:
        time.sleep(1.0)
        write(platform, run_id, StreamCall("llm", 1, ["b"]))
        time.sleep(2.5)  # longer than "so far" waits for a quiet stream
        write(platform, run_id, StreamCall("llm", 2, ["c"], done=True))

    writer = threading.Thread(target=finish_later)
    writer.start()
    try:
        async with session() as client:
            found, _ = await call(
                client, "read_run_stream", run_id=run_id, stream="llm", wait_seconds=30
            )
    finally:
        writer.join()
    assert found["ended"] is True and found["text"] == "abc"
    assert 2 < found["waited_seconds"] < 30  # it waited past a quiet stretch


async def test_waiting_stops_at_its_timeout_with_what_came(platform: Backend) -> None:
    run_id = executing(platform)
    write(platform, run_id, StreamCall("llm", 0, ["partial"]))
    async with session() as client:
        found, text = await call(
            client, "read_run_stream", run_id=run_id, stream="llm", wait_seconds=2
        )
    assert found["ended"] is False and found["text"] == "partial"
    assert 2 <= found["waited_seconds"] < 5 and "more may come" in text


async def test_a_stream_never_written_of_an_ended_run_is_empty_and_ended(
    platform: Backend,
) -> None:
    run = platform.engine.tasks.trigger(platform.env.id, "hello", {}, TriggerOptions())
    platform.engine.runs.cancel(platform.env.id, run.id)
    async with session() as client:
        found, text = await call(client, "read_run_stream", run_id=run.id, stream="nope")
    assert found["ended"] is True and found["chunk_count"] == 0 and found["chunks"] == []
    assert found["run_status"] == "CANCELED" and text.startswith("No chunks in stream 'nope'")


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("get_run_metadata", {"run_id": "run_nope"}, "run_nope"),
        ("read_run_stream", {"run_id": "run_nope", "stream": "llm"}, "run_nope"),
        ("read_run_stream", {"run_id": "RUN", "stream": "a/b"}, "stream"),
        ("read_run_stream", {"run_id": "RUN", "stream": "llm", "wait_seconds": 301}, "wait"),
        ("read_run_stream", {"run_id": "RUN"}, "stream"),
    ],
)
async def test_bad_input_is_a_tool_error_naming_the_argument(
    platform: Backend, tool: str, arguments: dict[str, Any], named: str
) -> None:
    run_id = executing(platform)
    arguments = {k: run_id if v == "RUN" else v for k, v in arguments.items()}
    async with session() as client:
        text = await refused(client, tool, **arguments)
    assert named in text
    if named == "run_nope":
        assert "list_runs" in text


async def test_both_tools_are_there_under_readonly(platform: Backend) -> None:
    async with session(readonly=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("get_run_metadata", "read_run_stream"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint is True
