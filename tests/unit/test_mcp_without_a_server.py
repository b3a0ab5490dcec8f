"""With no Conveyor server and no credential, the MCP server still starts, lists its tools and
searches the docs; every tool that needs a server is a tool error saying how to get one."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from conveyor.mcp.access import ServerOptions
from conveyor.mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY", "CONVEYOR_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


async def test_tools_that_need_a_server_say_how_to_get_one() -> None:
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("get_current_worker", {})
        assert result.is_error
        assert "conveyor dev" in result.content[0].text and "CONVEYOR_ACCESS_TOKEN" in result.content[0].text
        orgs = await client.call_tool("list_orgs", {})
        assert orgs.is_error and "conveyor login" in orgs.content[0].text
        whoami = await client.call_tool("whoami", {})
        assert not whoami.is_error
        assert whoami.structured_content["credential"] == "none" and whoami.structured_content["problems"]
        docs = await client.call_tool("search_docs", {"query": "durable waits"})
        assert not docs.is_error and docs.structured_content["results"]


async def test_arguments_are_checked_before_anything_runs() -> None:
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("list_runs", {"limit": 1000})
        assert result.is_error and "100" in result.content[0].text
        result = await client.call_tool("list_runs", {"environment": "production"})
        assert result.is_error


async def test_a_pinned_project_refuses_another() -> None:
    async with Client(build_server(ServerOptions(project_ref="proj_a")), mode="legacy") as client:
        result = await client.call_tool("list_runs", {"project_ref": "proj_b"})
    assert result.is_error and "pinned" in result.content[0].text
