"""The MCP bulk tools with the `mcp` SDK's own client, against a real server (uvicorn over SQLite
and PostgreSQL, ticking): failed runs of a task replayed by filter, unfinished runs canceled,
progress read back, no filter refused as a tool error, and none of the write tools under
--readonly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.models import RunStatus
from tests.integration.conftest import held
from tests.integration.mcp_tools import call, session
from tests.integration.test_http_bulk_actions import ticking  # noqa: F401 - a fixture

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("isolated_settings", "ticking")]


def failed_runs(backend: Backend, n: int) -> list[str]:
    engine, env = backend.engine, backend.env
    ids = [engine.tasks.trigger(env.id, "hello", {"i": i}).id for i in range(n)]
    engine.workers.lease(env.id, "worker-1", capacity=100)
    engine.workers.complete(
        "worker-1", [held(engine, r, 1, "aborted", error={"message": "x"}) for r in ids]
    )
    return ids


async def test_failed_runs_are_replayed_and_queued_ones_canceled_by_filter(
    platform: Backend,
) -> None:
    failed = failed_runs(platform, 2)
    queued = platform.engine.tasks.trigger(platform.env.id, "other", {}).id
    async with session() as client:
        replayed, text = await call(
            client, "bulk_replay_runs", status=["FAILED"], task_id="hello", since="1h"
        )
        action = replayed["action"]
        assert (action["status"], action["done"], action["kind"]) == ("COMPLETED", 2, "replay")
        assert replayed["environment"] == "dev"
        assert text == f"Bulk replay {action['id']} is COMPLETED: 2 of 2 runs replayed."
        read, _ = await call(client, "get_bulk_action", action_id=action["id"])
        assert read["action"]["done"] == 2

        canceled, text = await call(client, "bulk_cancel_runs", task_id="other")
        assert canceled["action"]["done"] == 1 and "runs canceled" in text

        refused = await client.call_tool("bulk_cancel_runs", {})
        assert refused.is_error and "at least one filter" in refused.content[0].text
        unknown = await client.call_tool("get_bulk_action", {"action_id": "bulk_nope"})
        assert unknown.is_error and "bulk_" in unknown.content[0].text

    runs, _ = platform.engine.runs.list(platform.env.id, task_id="hello", limit=100)
    assert sorted(r.replayed_from for r in runs if r.replayed_from) == sorted(failed)
    assert platform.engine.runs.get(platform.env.id, queued).status is RunStatus.CANCELED


async def test_readonly_has_only_the_reading_bulk_tool(platform: Backend) -> None:
    async with session(readonly=True) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "get_bulk_action" in names
    assert not names & {"bulk_cancel_runs", "bulk_replay_runs"}
    async with session() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["bulk_cancel_runs"].annotations.destructive_hint is True
    assert tools["bulk_replay_runs"].annotations.read_only_hint is False
