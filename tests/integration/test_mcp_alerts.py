"""The MCP alert tools with the `mcp` SDK's own client, against a real server (uvicorn over
SQLite and PostgreSQL): a channel created (its signing secret answered once), listed with its
deliveries, bad input answered as a tool error, and no write tool under --readonly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.mcp_tools import session

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("isolated_settings")]


async def test_create_and_list_alerts(platform: Backend) -> None:
    async with session() as client:
        made = await client.call_tool(
            "create_alert",
            {"event": "run.failed", "webhook": "https://example.com/hook", "task": "hello"},
        )
        assert not made.is_error, made.content
        assert made.structured_content is not None
        alert = made.structured_content["alert"]
        assert alert["secret"].startswith("whsec_") and alert["task"] == "hello"
        assert alert["secret"] in made.content[0].text
        platform.engine.alerts.test(platform.env.id, alert["id"])

        listed = await client.call_tool("list_alerts", {})
        assert not listed.is_error and listed.structured_content is not None
        assert [a["id"] for a in listed.structured_content["alerts"]] == [alert["id"]]
        assert listed.structured_content["alerts"][0].get("secret") is None
        assert alert["secret"] not in listed.content[0].text
        (delivery,) = listed.structured_content["deliveries"]
        assert delivery["event"] == "alert.test" and delivery["status"] == "pending"
        assert "window 60s" in listed.content[0].text

        bad = await client.call_tool(
            "create_alert", {"event": "deploy.failed", "email": "not-an-address"}
        )
        assert bad.is_error and "not an email address" in str(bad.content[0].text)
        both = await client.call_tool(
            "create_alert",
            {"event": "deploy.failed", "email": "a@b.example", "slack": "https://x.example/s"},
        )
        assert both.is_error and "one of" in str(both.content[0].text)
    assert len(platform.engine.alerts.list(platform.env.id).data) == 1


async def test_readonly_has_no_create_alert(platform: Backend) -> None:
    async with session(readonly=True) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "list_alerts" in names and "create_alert" not in names
