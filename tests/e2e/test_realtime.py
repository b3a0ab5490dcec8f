"""Realtime end to end, on both topologies: a run's metadata changes reach a subscriber live
(the run's own, its parent's and its root's), tags added in the run and batches are subscribed
to, a late subscriber to a stream gets every chunk from the first, a replay counts an increment
once, a backend's update reaches subscribers, `Last-Event-ID` resumes without repeats; and on two
servers over one PostgreSQL, a subscriber on one server sees a run another server hands out."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import AsyncClient, AuthenticationError, Client, Run
from tests.databases import postgres_schema
from tests.e2e.conftest import (
    DevServer,
    ServerProcess,
    TeamPlatform,
    WorkerProcess,
    make_project,
)

TOKEN = re.compile(r"cv_pat_[0-9a-f]{40}")


def run_async(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def watch(client: AsyncClient, run_id: str) -> list[tuple[float, Run]]:
    """Every snapshot of the run until it ends, with the moment it arrived."""
    return [(time.monotonic(), run) async for run in client.runs.subscribe(run_id)]


def test_a_subscriber_sees_the_progress_live_and_the_end(
    platform: DevServer | TeamPlatform,
) -> None:
    async def body() -> list[tuple[float, Run]]:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            tag = f"live-{secrets.token_hex(3)}"
            handle = await client.tasks.trigger(
                "progress", {"total": 10, "pause": 0.15, "tag": tag}
            )
            return await watch(client, handle.id)

    seen = run_async(body())
    done = [run.metadata.get("done", 0) for _, run in seen]
    assert done == sorted(done) and done[-1] == 10
    live = [
        run
        for _, run in seen
        if run.status.value == "EXECUTING" and 0 < run.metadata.get("done", 0) < 10
    ]
    assert len({r.metadata["done"] for r in live}) >= 4, done  # seen as it went, not at the end
    last = seen[-1][1]
    assert last.status.value == "COMPLETED"
    assert last.metadata["items"] == list(range(10)) and last.metadata["total"] == 10
    assert any(t.startswith("live-") for t in last.tags)


def test_children_change_their_parent_and_root(platform: DevServer | TeamPlatform) -> None:
    with platform.client() as client:
        handle = client.trigger("fan-progress", {"children": 5})
        run = client.runs.poll(handle.id, timeout=60)
    assert run.status.value == "COMPLETED"
    assert run.metadata["children_done"] == 5 and len(set(run.metadata["finished"])) == 5


def test_a_late_subscriber_to_a_stream_gets_every_chunk_from_the_first(
    platform: DevServer | TeamPlatform,
) -> None:
    async def body() -> tuple[list[str], Run]:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            handle = await client.tasks.trigger("llm", {"tokens": 60, "pause": 0.02})
            while (await client.runs.retrieve(handle.id)).status.value != "EXECUTING":
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a good part of it is written already
            chunks = [chunk async for chunk in client.runs.stream(handle.id, "llm")]
            return chunks, await client.runs.poll(handle.id)

    chunks, run = run_async(body())
    assert chunks == [f"t{i} " for i in range(60)]
    assert run.output == {"text": "".join(chunks)}


def test_a_chunk_before_a_pause_of_the_source_arrives_before_the_pause_ends(
    platform: DevServer | TeamPlatform,
) -> None:
    """The chunk a model wrote before it stopped to think is not held back until it goes on."""

    async def body() -> list[tuple[str, float]]:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            handle = await client.tasks.trigger(
                "llm", {"tokens": 4, "pause": 0.01, "think_after": 1, "think": 4.0}
            )
            return [
                (chunk, time.monotonic()) async for chunk in client.runs.stream(handle.id, "llm")
            ]

    received = run_async(body())
    assert [c for c, _ in received] == ["t0 ", "t1 ", "t2 ", "t3 "]
    # t1 came out just before the 4 s pause, t2 just after it: t1 was delivered during it
    assert received[2][1] - received[1][1] > 2.0, received


def test_an_increment_counts_once_when_the_run_is_replayed(
    platform: DevServer | TeamPlatform,
) -> None:
    async def body() -> Run:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            handle = await client.tasks.trigger("count-once", {})
            answered = False
            async for run in client.runs.subscribe(handle.id):
                if run.status.value == "WAITING" and "token" in run.metadata and not answered:
                    answered = True
                    # a backend's change reaches subscribers, and the run goes on from it
                    await client.runs.update_metadata(
                        handle.id, {**run.metadata, "note": "from the backend"}
                    )
                    await client.waitpoints.complete_token(run.metadata["token"], {})
            return await client.runs.retrieve(handle.id)

    run = run_async(body())
    assert run.status.value == "COMPLETED"
    assert run.output == {"count": 2, "marks": ["before", "after"]}  # not 3: replayed once
    assert run.metadata["count"] == 2 and run.metadata["note"] == "from the backend"


def test_the_runs_of_a_batch_and_of_a_tag_are_subscribed_to(
    platform: DevServer | TeamPlatform,
) -> None:
    tag = f"tenant-{secrets.token_hex(3)}"

    async def body() -> tuple[dict[str, Run], dict[str, Run]]:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            by_tag: dict[str, Run] = {}

            async def follow_tag() -> None:
                async for run in client.runs.subscribe(tag=tag):
                    by_tag[run.id] = run
                    if len(by_tag) == 2 and all(r.status.is_final for r in by_tag.values()):
                        return

            follower = asyncio.create_task(follow_tag())
            await asyncio.sleep(0.3)
            for _ in range(2):
                await client.tasks.trigger("progress", {"total": 3, "pause": 0.05}, tags=[tag])
            batch = await client.tasks.batch_trigger(
                "progress", [{"payload": {"total": 2, "pause": 0.05}} for _ in range(3)]
            )
            by_batch = {run.id: run async for run in client.runs.subscribe(batch_id=batch.batch_id)}
            await asyncio.wait_for(follower, 30)
            return by_tag, by_batch

    by_tag, by_batch = run_async(body())
    assert len(by_batch) == 3 and {r.status.value for r in by_batch.values()} == {"COMPLETED"}
    assert len(by_tag) == 2 and all(r.metadata["done"] == 3 for r in by_tag.values())


def test_last_event_id_resumes_without_repeats(platform: DevServer | TeamPlatform) -> None:
    with platform.client() as client:
        handle = client.trigger("progress", {"total": 6, "pause": 0.2})
    headers = {"Authorization": f"Bearer {platform.secret_key}"}
    url = f"{platform.api_url}/api/v1/runs/{handle.id}/subscribe"
    with httpx.Client(headers=headers, timeout=30) as http:
        first: list[str] = []
        with http.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("id: "):
                    first.append(line[4:])
                if len(first) == 2:
                    break
        rest: list[str] = []
        with http.stream("GET", url, headers={"Last-Event-ID": first[-1]}) as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    rest.append(line[4:])
                if line == "event: end":
                    break
    assert rest and all(float(i) > float(first[-1]) for i in rest)
    assert float(rest[-1]) >= float(first[-1])


def test_a_subscriber_on_one_server_sees_a_run_handed_out_by_another(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    with postgres_schema() as url:
        servers = [ServerProcess(root=root, database_url=url, name=f"s{i}") for i in range(2)]
        worker: WorkerProcess | None = None
        try:
            token = TOKEN.findall(servers[0].start())[0]
            servers[1].start()
            with Client(servers[0].api_url, token) as admin:
                admin.projects.create("Live")
                key = admin.projects.key("live", "prod").secret_key
            for server in servers:
                server.secret_key = key
            worker = WorkerProcess(servers[0], "w", executors=2)  # works for server 0 only
            worker.start()

            async def body() -> tuple[list[tuple[float, Run]], list[str], dict[str, Run]]:
                async with (
                    AsyncClient(servers[0].api_url, key) as first,
                    AsyncClient(servers[1].api_url, key) as second,
                ):
                    handle = await first.tasks.trigger("progress", {"total": 8, "pause": 0.15})
                    seen = await watch(second, handle.id)
                    llm = await first.tasks.trigger("llm", {"tokens": 30})
                    chunks = [c async for c in second.runs.stream(llm.id, "llm")]
                    # a browser's tokens, made through one server, used on the other
                    tag = f"b-{secrets.token_hex(3)}"
                    public = await first.auth.create_public_token(read={"tags": [tag]})
                    once = await first.auth.create_trigger_token("progress")
                    by_tag: dict[str, Run] = {}
                    async with AsyncClient(servers[1].api_url, public) as browser:

                        async def follow() -> None:
                            async for run in browser.runs.subscribe(tag=tag):
                                by_tag[run.id] = run
                                if by_tag and all(r.status.is_final for r in by_tag.values()):
                                    return

                        follower = asyncio.create_task(follow())
                        await asyncio.sleep(0.3)
                        async with AsyncClient(servers[1].api_url, once) as page:
                            await page.tasks.trigger(
                                "progress", {"total": 3, "pause": 0.05}, tags=[tag]
                            )
                        async with AsyncClient(servers[0].api_url, once) as again:
                            with pytest.raises(AuthenticationError):  # used up, on any server
                                await again.tasks.trigger("progress", {"total": 1}, tags=[tag])
                        await asyncio.wait_for(follower, 30)
                    return seen, chunks, by_tag

            seen, chunks, by_tag = run_async(body())
        finally:
            if worker is not None:
                worker.stop()
            for server in servers:
                server.stop()
    done = [run.metadata.get("done", 0) for _, run in seen]
    assert len({d for d in done if 0 < d < 8}) >= 3, done  # live through the other server
    assert seen[-1][1].status.value == "COMPLETED" and done[-1] == 8
    assert chunks == [f"t{i} " for i in range(30)]
    assert len(by_tag) == 1 and next(iter(by_tag.values())).metadata["done"] == 3


def test_changes_after_a_journaled_step_survive_a_replay(
    platform: DevServer | TeamPlatform,
) -> None:
    async def body() -> Run:
        async with AsyncClient(platform.api_url, platform.secret_key) as client:
            handle = await client.tasks.trigger("metadata-in-steps", {})
            answered = False
            async for run in client.runs.subscribe(handle.id):
                if run.status.value == "WAITING" and "token" in run.metadata and not answered:
                    answered = True
                    await client.waitpoints.complete_token(run.metadata["token"], {})
            return await client.runs.retrieve(handle.id)

    run = run_async(body())
    assert run.status.value == "COMPLETED", run.error
    expected = {"charged": 11, "root_is_self": True, "after": 1}
    assert {k: run.metadata[k] for k in expected} == expected
    assert {k: run.output["seen"][k] for k in expected} == expected  # the run's own view too


def test_increments_count_once_when_the_platform_is_killed_mid_way(
    fresh_platform: DevServer | TeamPlatform,
) -> None:
    """kill -9 of every process while runs are sending their metadata in batches: the retries
    make every increment again, and each counts once."""
    fresh_platform.start()
    with fresh_platform.client() as client:
        ids = [client.trigger("count-to", {"n": 60}).id for _ in range(4)]
    time.sleep(1.5)  # about half way
    fresh_platform.kill9()
    fresh_platform.start()
    with fresh_platform.client() as client:
        runs = [client.runs.poll(run_id, timeout=90) for run_id in ids]
    for run in runs:
        assert run.status.value == "COMPLETED", run.error
        assert run.metadata["count"] == 60 and run.output["count"] == 60, run.metadata
    assert any(run.attempts > 1 for run in runs)  # they were cut off and retried
