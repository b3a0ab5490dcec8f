"""Talking to the MCP server with the `mcp` SDK's own client, for the tests of its tools (the
`platform` fixture of conftest.py points the server at a live API with the dev key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client

from conveyor.mcp.access import ServerOptions
from conveyor.mcp.server import build_server


@asynccontextmanager
async def session(**options: Any) -> AsyncIterator[Client]:
    """A client session with an MCP server made with `options` (ServerOptions)."""
    async with Client(build_server(ServerOptions(**options)), mode="legacy") as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    """A tool's structured answer and its text; the call must succeed."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content, result.content[0].text


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The text of a tool's error; the call must fail."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)
