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
        assert (
            "conveyor dev" in result.content[0].text
            and "CONVEYOR_ACCESS_TOKEN" in result.content[0].text
        )
        orgs = await client.call_tool("list_orgs", {})
        assert orgs.is_error and "conveyor login" in orgs.content[0].text
        whoami = await client.call_tool("whoami", {})
        assert not whoami.is_error
        assert (
            whoami.structured_content["credential"] == "none"
            and whoami.structured_content["problems"]
        )
        docs = await client.call_tool("search_docs", {"query": "durable waits"})
        assert not docs.is_error and docs.structured_content["results"]


async def test_arguments_are_checked_before_anything_runs() -> None:
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("list_runs", {"limit": 1000})
        assert result.is_error and "100" in result.content[0].text
        result = await client.call_tool("list_runs", {"environment": "production"})
        assert result.is_error
        result = await client.call_tool(
            "create_schedule", {"task": "digest", "cron": "@daily", "catch_up": "all"}
        )
        assert result.is_error and "catch_up" in result.content[0].text
        result = await client.call_tool("list_schedules", {"type": "CRON"})
        assert result.is_error and "type" in result.content[0].text


async def test_a_pinned_project_refuses_another() -> None:
    async with Client(build_server(ServerOptions(project_ref="proj_a")), mode="legacy") as client:
        result = await client.call_tool("list_runs", {"project_ref": "proj_b"})
    assert result.is_error and "pinned" in result.content[0].text


def write_project(root: Path, code: str) -> None:
    (root / "tasks").mkdir()
    (root / "conveyor.toml").write_text('project = "proj_shop"\ndirs = ["tasks"]\n')
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "app.py").write_text(code)


async def test_a_dry_run_deploy_imports_the_project_tasks_and_needs_no_server(
    tmp_path: Path,
) -> None:
    write_project(
        tmp_path,
        "from conveyor import task\n\n@task(id='greet')\nasync def greet(payload):\n    return 1\n",
    )
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("deploy", {"environment": "prod", "dry_run": True})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert (
        result.structured_content["dry_run"] is True
        and result.structured_content["version"] is None
    )
    assert result.structured_content["tasks"] == ["greet"]
    assert "tasks/app.py" in result.structured_content["files"]
    assert "imported 1 task from the bundle: greet" in result.content[0].text


async def test_a_deploy_whose_code_fails_to_import_is_a_tool_error_naming_the_file(
    tmp_path: Path,
) -> None:
    write_project(tmp_path, "import not_a_module_anywhere\n")
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("deploy", {"environment": "staging", "dry_run": True})
    assert result.is_error
    text = result.content[0].text
    assert (
        "tasks/app.py" in text
        and "not_a_module_anywhere" in text
        and "Nothing was uploaded" in text
    )


async def test_a_deploy_without_a_key_for_the_environment_says_how_to_get_one(
    tmp_path: Path,
) -> None:
    write_project(
        tmp_path,
        "from conveyor import task\n\n@task(id='greet')\nasync def greet(payload):\n    return 1\n",
    )
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("deploy", {"environment": "prod"})
        assert result.is_error
        assert "no key" in result.content[0].text and "conveyor login" in result.content[0].text
        preview = await client.call_tool(
            "deploy", {"environment": "preview", "branch": "feature-x"}
        )
        assert preview.is_error and "cv_prev_" in preview.content[0].text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"environment": "dev"}, "Dev has no deploys"),
        ({"environment": "preview"}, "needs branch"),
        ({"environment": "prod", "branch": "x"}, "only with environment='preview'"),
        ({"environment": "preview-feature-x"}, "environment='preview', branch="),
        ({"environment": "production"}, "staging, prod or preview"),
    ],
)
async def test_deploy_refuses_dev_and_a_wrong_target(
    arguments: dict[str, str], message: str
) -> None:
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        result = await client.call_tool("deploy", arguments)
    assert result.is_error and message in result.content[0].text


async def test_deploy_is_destructive_absent_under_readonly_and_refused_under_dev_only() -> None:
    async with Client(build_server(ServerOptions()), mode="legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert (
        tools["deploy"].annotations is not None
        and tools["deploy"].annotations.destructive_hint is True
    )
    assert (
        tools["list_deploys"].annotations is not None
        and tools["list_deploys"].annotations.read_only_hint is True
    )
    async with Client(build_server(ServerOptions(readonly=True)), mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "deploy" not in names and "list_deploys" in names
    async with Client(build_server(ServerOptions(dev_only=True)), mode="legacy") as client:
        result = await client.call_tool("deploy", {"environment": "dev", "dry_run": True})
    assert result.is_error and "--dev-only" in result.content[0].text
