"""get_run_metadata and read_run_stream: what a run tells the outside while it runs
(docs/realtime.md), read through the Client.

A run's code reports progress in its metadata (`metadata.set`, `increment`, ...) and tags
(`tags.add`), and writes streams of chunks (`streams.pipe`, an LLM's tokens, say). The first
tool reads the metadata and tags as they are now; the second reads a stream from its first
chunk: what is stored so far, or, with `wait_seconds`, until the stream ends or the time is up.
A stream's text chunks are joined into one text.
"""

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.mcp.access import Access
from conveyor.mcp.answers import (
    MAX_VALUE_CHARS,
    RunMetadataAnswer,
    RunSummary,
    StreamAnswer,
    answer,
    bounded,
    run_line,
    tool_errors,
)
from conveyor.mcp.tools import READ, EnvironmentArg, ProjectRefArg, add
from conveyor.mcp.tools.runs import NO_RUN, RunIdArg

MAX_CHUNKS = 1_000  # chunks an answer carries; the rest are counted
MAX_TEXT_CHARS = 20_000  # of a stream or of the metadata, in the readable text
QUIET = 1.5  # seconds without a chunk after which "so far" is reached (the server looks again
# every second for what no event announced, so a shorter quiet could stop mid-backlog)
SO_FAR = 5.0  # seconds at most that reading "so far" takes, however fast chunks come
REPORT_EVERY = 1.0  # seconds between progress notifications while waiting
END = object()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text)} chars in all)"


async def _read(
    chunks: AsyncIterator[Any], wait_seconds: int, ctx: Context
) -> tuple[list[Any], int, bool, float]:
    """(the first MAX_CHUNKS chunks, how many were read, whether the stream ended, seconds)."""
    started = time.monotonic()
    deadline = started + (wait_seconds if wait_seconds else SO_FAR)
    kept: list[Any] = []
    count, ended, reported = 0, False, started
    try:
        while True:
            now = time.monotonic()
            limit = deadline - now if wait_seconds else min(QUIET, deadline - now)
            if limit <= 0:
                break
            with anyio.move_on_after(limit) as scope:
                chunk = await anext(chunks, END)
            if scope.cancelled_caught:  # quiet, or out of time: the reading stops here
                break
            if chunk is END:
                ended = True
                break
            count += 1
            if len(kept) < MAX_CHUNKS:
                kept.append(chunk)
            if wait_seconds and time.monotonic() - reported >= REPORT_EVERY:
                reported = time.monotonic()
                await ctx.report_progress(
                    round(reported - started, 2), wait_seconds, message=f"{count} chunks so far"
                )
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return kept, count, ended, round(time.monotonic() - started, 2)


def register(server: MCPServer[Any], access: Access) -> None:
    async def get_run_metadata(
        run_id: RunIdArg, environment: EnvironmentArg = None, project_ref: ProjectRefArg = None
    ) -> Annotated[CallToolResult, RunMetadataAnswer]:
        """Get a run's metadata and tags as they are now: what its code reports while it runs
        (progress such as {"done": 3, "total": 10}, the current stage, files made so far;
        children add to their parent's with metadata.parent.*) or a backend set with
        runs.update_metadata. Call it again to see progress move; get_run_details has the rest
        of the run, wait_for_run_to_complete waits for its end."""
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            run = await client.runs.retrieve(run_id)
        text_json = json.dumps(run.metadata, ensure_ascii=False, separators=(",", ":"))
        result = RunMetadataAnswer(
            environment=access.label(client),
            run=RunSummary.of(run),
            metadata=bounded(run.metadata),
            metadata_bytes=len(text_json.encode()),
            parent_id=run.parent_id,
            root_id=run.root_id,
        )
        lines = [run_line(run)]
        lines += [f"tags: {', '.join(run.tags)}"] if run.tags else ["tags: none"]
        if run.parent_id:
            lines.append(f"parent: {run.parent_id}  root: {run.root_id or run.parent_id}")
        if run.metadata:
            pretty = json.dumps(run.metadata, ensure_ascii=False, indent=2)
            lines.append(f"metadata ({result.metadata_bytes} bytes of JSON):")
            lines.append(_cut(pretty, MAX_TEXT_CHARS))
        else:
            lines.append(
                "metadata: none yet (the run's code sets it with metadata.set(key, value); "
                "search_docs 'run metadata' explains)"
            )
        return answer(result, "\n".join(lines))

    async def read_run_stream(
        run_id: RunIdArg,
        ctx: Context,
        stream: Annotated[
            str,
            Field(
                pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                description="The stream's name, as the task's code wrote it with "
                "streams.pipe(name, ...) (1 to 64 letters, digits, '-', '_', '.' or ':')",
            ),
        ],
        wait_seconds: Annotated[
            int,
            Field(
                ge=0,
                le=300,
                description="0: return the chunks stored so far (a few seconds at most). "
                "More: wait up to this long for the stream to end, reporting progress",
            ),
        ] = 0,
        environment: EnvironmentArg = None,
        project_ref: ProjectRefArg = None,
    ) -> Annotated[CallToolResult, StreamAnswer]:
        """Read a run's stream (what its code writes with streams.pipe, such as an LLM's
        tokens) from the first chunk: the chunks stored so far, or with wait_seconds until the
        stream ends. Text chunks are joined into `text`. ended=false means more may come: call
        again, with wait_seconds to wait for the end."""
        with tool_errors(NO_RUN):
            client = await access.environment(environment, project_ref)
            run = await client.runs.retrieve(run_id)  # an unknown run is an error at once
            chunks, count, ended, waited = await _read(
                client.runs.stream(run_id, stream), wait_seconds, ctx
            )
            if not ended:
                run = await client.runs.retrieve(run_id)
        omitted = count - len(chunks)
        text = "".join(chunks) if chunks and all(isinstance(c, str) for c in chunks) else None
        result = StreamAnswer(
            environment=access.label(client),
            run_id=run.id,
            stream=stream,
            run_status=run.status,
            ended=ended,
            chunk_count=count,
            chunks=[bounded(c, MAX_VALUE_CHARS) for c in chunks],
            chunks_omitted=omitted,
            text=None if text is None else _cut(text, MAX_VALUE_CHARS),
            waited_seconds=waited,
        )
        return answer(result, _stream_text(result, chunks, text))

    add(server, access, get_run_metadata, READ, "Get a run's metadata and tags")
    add(server, access, read_run_stream, READ, "Read a run's stream")


def _stream_text(result: StreamAnswer, chunks: list[Any], text: str | None) -> str:
    r = result
    where = f"stream {r.stream!r} of {r.run_id} ({r.run_status.value})"
    if r.ended:
        state = "ended"
    elif r.run_status.is_final:
        state = "not ended, though the run has"
    else:
        state = "still open: more may come; call again (wait_seconds waits for the end)"
    if not r.chunk_count:
        head = f"No chunks in {where}; {state}."
        if not r.ended:
            head += " Its code writes them with streams.pipe(name, ...)."
        return head
    shown = f"the first {len(chunks)} of " if r.chunks_omitted else ""
    lines = [f"{r.chunk_count} chunks in {where}, {shown}read in {r.waited_seconds}s; {state}."]
    if text is not None:
        lines.append(_cut(text, MAX_TEXT_CHARS))
    else:
        body = "\n".join(json.dumps(c, ensure_ascii=False, default=str) for c in chunks)
        lines.append(_cut(body, MAX_TEXT_CHARS))
    return "\n".join(lines)
