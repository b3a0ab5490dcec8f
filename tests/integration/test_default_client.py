"""`conveyor.tasks` / `conveyor.runs` and `Task.trigger` outside a run: the process-wide
AsyncClient configured from the environment or `.conveyor/dev.json`, one per event loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

from conveyor.client import AsyncClient, Client
from conveyor.client import default as default_module
from conveyor.client.default import default_client, runs, tasks
from conveyor.errors import AuthenticationError, PayloadError
from conveyor.models import RunStatus
from conveyor.sdk.task import schema_task, task

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.usefixtures("isolated_settings")


@pytest.fixture
def configured(live_server: str, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CONVEYOR_API_URL", live_server)
    monkeypatch.setenv("CONVEYOR_SECRET_KEY", backend.key)
    monkeypatch.setattr(default_module, "_clients", {})
    return live_server


@task(id="hello")
async def hello(payload: dict) -> dict:
    return payload


class Video(BaseModel):
    video_url: str


@schema_task(id="process-video", schema=Video)
async def process_video(payload: Video) -> None:
    return None


def test_module_level_tasks_and_runs(configured: str) -> None:
    async def main() -> None:
        handle = await tasks.trigger("hello", {"url": "https://x"}, tags=["a"])
        run = await runs.retrieve(handle.id)
        assert (run.payload, run.tags, run.status) == (
            {"url": "https://x"},
            ["a"],
            RunStatus.QUEUED,
        )
        batch = await tasks.batch_trigger(
            "hello", [{"payload": 1}, {"payload": 2, "options": {"priority": 3}}]
        )
        assert len(batch.runs) == 2
        assert {r.id for r in await runs.list(task="hello")} == {
            handle.id,
            *(h.id for h in batch.runs),
        }
        assert (await runs.cancel(handle.id)).status is RunStatus.CANCELED
        replay = await runs.replay(handle.id, {"url": "https://y"})
        assert (await runs.retrieve(replay.id)).payload == {"url": "https://y"}
        assert await runs.logs(handle.id) == []
        with pytest.raises(TimeoutError):
            await runs.poll(replay.id, interval=0.05, timeout=0.1)
        assert {t.id for t in await tasks.list()} >= {"hello"}
        assert (await tasks.retrieve("hello")).id == "hello"
        await default_client().aclose()

    asyncio.run(main())


def test_module_level_namespaces_have_every_operation_of_the_async_client(
    configured: str,
) -> None:
    def operations(namespace: object) -> set[str]:
        return {name for name in dir(namespace) if not name.startswith("_")}

    async def main() -> None:
        client = default_client()
        assert operations(tasks) == operations(client.tasks)
        assert operations(runs) == operations(client.runs)
        assert operations(default_module.queues) == operations(client.queues)
        handle = await tasks.trigger("hello", {})
        assert (await runs.trace(handle.id)).root.id == handle.id
        assert [r.id for r in await runs.list(roots=True, task="hello")] == [handle.id]
        await client.aclose()

    asyncio.run(main())


def test_task_trigger_outside_a_run_goes_through_the_default_client(
    configured: str, backend: Backend
) -> None:
    async def main() -> None:
        handle = await hello.trigger({"n": 1}, tags=["from-sdk"], delay="1h")
        run = await runs.retrieve(handle.id)
        assert (run.task_id, run.payload, run.tags, run.status) == (
            "hello",
            {"n": 1},
            ["from-sdk"],
            RunStatus.DELAYED,
        )
        batch = await process_video.batch_trigger(
            [
                {"payload": Video(video_url="https://v/1")},
                {"payload": {"video_url": "https://v/2"}, "options": {"queue": {"name": "videos"}}},
            ]
        )
        second = await runs.retrieve(batch.runs[1].id)
        assert (second.payload, second.queue) == ({"video_url": "https://v/2"}, "videos")
        with pytest.raises(PayloadError, match="video_url"):
            await process_video.trigger({"url": "nope"})
        await default_client().aclose()

    asyncio.run(main())
    assert len(backend.engine.runs.list(backend.env.id)[0]) == 3


def test_one_client_per_event_loop(configured: str) -> None:
    async def get_twice() -> tuple[AsyncClient, AsyncClient]:
        first = default_client()
        await runs.list(limit=1)
        return first, default_client()

    a1, a2 = asyncio.run(get_twice())
    b1, b2 = asyncio.run(get_twice())  # a new loop: the old client's connections are unusable
    assert a1 is a2
    assert b1 is b2
    assert b1 is not a1
    assert list(default_module._clients.values()) == [b1]  # the closed loop's client was dropped

    async def close_then_use() -> tuple[AsyncClient, AsyncClient]:
        first = default_client()
        await first.aclose()
        await runs.list(limit=1)  # works: a closed default client is replaced
        return first, default_client()

    closed, fresh = asyncio.run(close_then_use())
    assert closed.is_closed
    assert fresh is not closed


def test_configure_overrides_the_environment(
    live_server: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_module, "_clients", {})
    monkeypatch.setattr(default_module, "_settings", {"api_url": None, "secret_key": None})
    default_module.configure(api_url=live_server, secret_key=backend.key)

    async def main() -> str:
        handle = await tasks.trigger("hello", 1)
        await default_client().aclose()
        return handle.id

    assert backend.engine.runs.get(backend.env.id, asyncio.run(main())).payload == 1


def test_without_a_key_the_error_says_what_to_set() -> None:
    async def main() -> None:
        await tasks.trigger("hello", {})

    with pytest.raises(AuthenticationError, match="CONVEYOR_SECRET_KEY"):
        asyncio.run(main())


def test_clients_find_the_dev_server_from_a_subdirectory(
    live_server: str, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".conveyor").mkdir(parents=True)
    (project / ".conveyor" / "dev.json").write_text(
        json.dumps({"api_url": live_server, "secret_key": backend.key})
    )
    (project / "src" / "app").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "app")
    with Client() as client:
        assert client.api_url == live_server
        handle = client.trigger("hello", {"from": "dev.json"})
        assert client.runs.retrieve(handle.id).payload == {"from": "dev.json"}
