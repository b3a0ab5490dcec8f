"""`conveyor mcp` speaks MCP over stdio to the SDK's own client, against a real `conveyor dev`
(and, for deploys, a real `conveyor server`).

Started in the project folder it needs no setup: it finds the dev server and its key. Tools
answer with typed structured content and readable text; expected failures are tool errors the
model can act on; under --readonly the write tools do not exist at all. With an environment's
key it deploys the project it runs in and lists the versions.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from conveyor import Client
from tests.e2e.conftest import DevServer, Shop, free_port, make_project

pytestmark = pytest.mark.anyio

WRITE_TOOLS = {
    "trigger_task",
    "cancel_run",
    "replay_run",
    "complete_token",
    "deploy",
    "initialize_project",
    "create_schedule",
    "bulk_cancel_runs",
    "bulk_replay_runs",
    "create_alert",
}
READ_TOOLS = {
    "search_docs",
    "read_docs_page",
    "whoami",
    "list_orgs",
    "list_projects",
    "get_current_worker",
    "get_task_schema",
    "list_runs",
    "get_run_details",
    "wait_for_run_to_complete",
    "get_bulk_action",
    "get_run_metadata",
    "read_run_stream",
    "list_deploys",
    "list_schedules",
    "get_schedule",
    "list_alerts",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def session(
    dev: DevServer | Path, *flags: str, **variables: str
) -> AsyncIterator[ClientSession]:
    """`conveyor mcp` started in the project folder (a dev server's, or any), with no CONVEYOR_*
    variables but `variables`."""
    root = dev.root if isinstance(dev, DevServer) else dev
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["XDG_CONFIG_HOME"] = str(root / "no-config")  # no stored login of whoever runs the tests
    env.update(variables)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "conveyor.cli.main", "mcp", *flags],
        cwd=str(root),
        env=env,
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def call(client: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.content and result.content[0].type == "text" and result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def test_every_tool_is_listed_with_annotations(dev: DevServer) -> None:
    async with session(dev) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    for name, tool in tools.items():
        assert tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (name in READ_TOOLS), name
        assert tool.description, name
    assert tools["cancel_run"].annotations.destructive_hint is True
    assert (
        tools["deploy"].annotations.destructive_hint is True
        and tools["deploy"].annotations.idempotent_hint is False
    )
    assert tools["trigger_task"].annotations.destructive_hint is False
    assert tools["create_schedule"].annotations.destructive_hint is False
    assert tools["get_run_details"].output_schema is not None


async def test_trigger_wait_and_read_a_run_with_no_setup(dev: DevServer) -> None:
    async with session(dev) as client:
        worker = await call(client, "get_current_worker")
        echo = next(task for task in worker["tasks"] if task["id"] == "echo")
        assert echo["queue"]["name"] and echo["retry"]["max_attempts"] >= 1
        assert "payload_schema" in next(task for task in worker["tasks"] if task["id"] == "video")

        schema = await call(client, "get_task_schema", task_id="video")
        assert schema["has_schema"] and "video_url" in schema["payload_schema"]["properties"]

        triggered = await call(
            client,
            "trigger_task",
            task_id="echo",
            payload={"hello": "mcp"},
            options={"tags": ["from-mcp"]},
        )
        run_id = triggered["run_id"]
        assert run_id.startswith("run_") and triggered["environment"] == "dev"

        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        waited = await client.call_tool(
            "wait_for_run_to_complete",
            {"run_id": run_id, "timeout_seconds": 30},
            progress_callback=on_progress,
        )
        assert not waited.is_error, waited.content
        assert waited.structured_content is not None
        assert waited.structured_content["finished"] is True
        assert waited.structured_content["run"]["status"] == "COMPLETED"
        assert waited.structured_content["run"]["output"] == {"hello": "mcp"}
        assert progress == sorted(
            progress
        )  # progress only ever goes up (it may race the result: no count)

        details = await call(client, "get_run_details", run_id=run_id)
        assert details["run"]["payload"] == {"hello": "mcp"}
        assert details["run"]["output"] == {"hello": "mcp"}
        assert [a["number"] for a in details["run"]["attempt_list"]] == [1]
        assert isinstance(details["logs"], list)
        trace = details["trace"]["root"]
        assert trace["kind"] == "run" and [c["kind"] for c in trace["children"]] == ["attempt"]

        runs = await call(client, "list_runs", tag="from-mcp")
        assert [r["id"] for r in runs["runs"]] == [run_id]


async def test_a_failed_run_shows_its_error_and_logs(dev: DevServer) -> None:
    async with session(dev) as client:
        run_id = (await call(client, "trigger_task", task_id="aborter"))["run_id"]
        waited = await call(client, "wait_for_run_to_complete", run_id=run_id, timeout_seconds=30)
        assert waited["run"]["status"] == "FAILED"
        result = await client.call_tool("get_run_details", {"run_id": run_id})
        assert "stop here" in result.content[0].text  # the readable text carries the error too


async def test_expected_failures_are_tool_errors_the_model_can_act_on(dev: DevServer) -> None:
    async with session(dev) as client:
        unknown = await client.call_tool("get_run_details", {"run_id": "run_doesnotexist"})
        assert unknown.is_error
        assert "list_runs" in unknown.content[0].text

        no_task = await client.call_tool("trigger_task", {"task_id": "no-such-task"})
        assert no_task.is_error and "no-such-task" in no_task.content[0].text

        bad_payload = await client.call_tool(
            "trigger_task", {"task_id": "video", "payload": {"format": "avi"}}
        )
        assert bad_payload.is_error and "video_url" in bad_payload.content[0].text

        deploy = await client.call_tool(
            "deploy", {"environment": "prod"}
        )  # the dev key opens only dev
        assert (
            deploy.is_error
            and "no key" in deploy.content[0].text
            and "conveyor login" in deploy.content[0].text
        )
        to_dev = await client.call_tool("deploy", {"environment": "dev"})
        assert to_dev.is_error and "conveyor dev" in to_dev.content[0].text


async def test_dev_lists_no_deploys_and_says_it_runs_local_code(dev: DevServer) -> None:
    async with session(dev) as client:
        deploys = await call(client, "list_deploys")
        text = (await client.call_tool("list_deploys", {})).content[0].text
    assert (
        deploys["environment"] == "dev"
        and deploys["deploys"] == []
        and deploys["current_version"] is None
    )
    assert (
        "runs the code of the project folder" in deploys["message"] and deploys["message"] in text
    )


async def test_a_dry_run_deploy_checks_the_project_and_uploads_nothing(dev: DevServer) -> None:
    async with session(dev) as client:
        dry = await call(client, "deploy", environment="prod", dry_run=True)
    assert dry["dry_run"] is True and dry["version"] is None and dry["deployment"] is None
    assert {"echo", "video", "aborter"} <= set(dry["tasks"]) and "pyproject.toml" in dry["files"]


async def test_search_docs_answers_from_the_shipped_docs(dev: DevServer) -> None:
    async with session(dev) as client:
        found = await call(client, "search_docs", query="side effects replay step.run")
    assert found["results"] and found["results"][0]["page"] == "durable-execution.md"


async def test_readonly_leaves_out_every_write_tool(dev: DevServer) -> None:
    async with session(dev, "--readonly", "--dev-only") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == READ_TOOLS
        refused = await client.call_tool("list_runs", {"environment": "prod"})
        assert refused.is_error
        whoami = await call(client, "whoami")
    assert whoami["credential"] == "environment_key" and whoami["environment"] == "dev"
    assert whoami["readonly"] is True and whoami["problems"] == []


SCHEDULED_TASKS = """
from conveyor import schedules


@schedules.task(id="nightly-report", cron="0 3 * * *", timezone="Europe/Paris")
async def nightly_report(payload: schedules.ScheduledPayload) -> dict:
    return {"for": payload.timestamp.isoformat()}


@schedules.task(id="customer-digest")
async def customer_digest(payload: schedules.ScheduledPayload) -> dict:
    return {"customer": payload.external_id}
"""


@pytest.fixture(scope="module")
def scheduled_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A `conveyor dev` of its own whose project adds two scheduled tasks: one declared at
    03:00 in Paris, one that only schedules made through the API fire."""
    root = make_project(tmp_path_factory.mktemp("e2e-schedules"))
    (root / "tasks" / "scheduled.py").write_text(SCHEDULED_TASKS)
    server = DevServer(root, free_port())
    server.start()
    yield server
    server.stop()


async def test_schedules_are_listed_made_per_customer_and_read(scheduled_dev: DevServer) -> None:
    async with session(scheduled_dev) as client:
        declared = await call(client, "list_schedules", type="DECLARATIVE")
        (nightly,) = declared["schedules"]
        assert (nightly["task"], nightly["cron"], nightly["timezone"]) == (
            "nightly-report",
            "0 3 * * *",
            "Europe/Paris",
        )

        arguments = {
            "task": "customer-digest",
            "cron": "0 9 * * 1",
            "timezone": "America/New_York",
            "external_id": "user-42",
            "deduplication_key": "user-42-digest",
        }
        made = await call(client, "create_schedule", **arguments)
        again = await call(client, "create_schedule", **arguments)
        schedule_id = made["schedule"]["id"]
        assert again["schedule"]["id"] == schedule_id and again["updated_existing"] is True

        found = await call(client, "list_schedules", external_id="user-42")
        assert [s["id"] for s in found["schedules"]] == [schedule_id]

        details = await client.call_tool("get_schedule", {"schedule_id": schedule_id})
        assert not details.is_error and details.structured_content is not None
        schedule = details.structured_content["schedule"]
        assert len(schedule["upcoming"]) == 5 and schedule["recent_fires"] == []
        text = details.content[0].text
        assert "09:00:00-0" in text and "no fires yet" in text  # New York time, its offset

        for bad, field in (
            ({"cron": "0 9 * *"}, "cron:"),
            ({"timezone": "Europe/Atlantis"}, "timezone:"),
            ({"task": "no-such-task"}, "task: 'no-such-task'"),
            ({"task": "echo"}, "not a scheduled task"),
        ):
            result = await client.call_tool("create_schedule", arguments | bad)
            assert result.is_error and field in result.content[0].text, result.content
        listed = await call(client, "list_schedules", type="IMPERATIVE")
        assert [s["id"] for s in listed["schedules"]] == [schedule_id]


async def test_a_runs_progress_and_stream_are_read_as_it_goes(dev: DevServer) -> None:
    async with session(dev) as client:
        llm = await call(
            client, "trigger_task", task_id="llm", payload={"tokens": 40, "pause": 0.06}
        )
        progress: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        read = await client.call_tool(
            "read_run_stream",
            {"run_id": llm["run_id"], "stream": "llm", "wait_seconds": 60},
            progress_callback=on_progress,
        )
        assert not read.is_error and read.structured_content is not None, read.content
        stream = read.structured_content
        assert stream["ended"] is True and stream["chunk_count"] == 40
        assert stream["text"] == "".join(f"t{i} " for i in range(40))
        assert progress and all(m.endswith("chunks so far") for m in progress)  # ~2.4 s long

        made = await call(client, "trigger_task", task_id="progress", payload={"total": 4})
        await call(client, "wait_for_run_to_complete", run_id=made["run_id"], timeout_seconds=60)
        found = await call(client, "get_run_metadata", run_id=made["run_id"])
    assert found["metadata"] == {"total": 4, "done": 4, "items": [0, 1, 2, 3]}
    assert found["run"]["status"] == "COMPLETED"


TASKS = """
from conveyor import task


@task(id="greet")
async def greet(payload):
    return {"hello": "{name}"}
"""


async def test_deploy_and_list_deploys_against_a_real_server(shop: Shop) -> None:
    (shop.root / "tasks" / "app.py").write_text(TASKS.replace("{name}", "v1"))
    async with session(
        shop.root, CONVEYOR_API_URL=shop.server.api_url, CONVEYOR_SECRET_KEY=shop.prod_key
    ) as client:
        empty = await call(client, "list_deploys")
        assert (
            empty["environment"] == "prod"
            and empty["deploys"] == []
            and "Nothing is deployed" in empty["message"]
        )

        first = await call(client, "deploy", environment="prod")
        assert re.fullmatch(r"\d{8}\.1", first["version"]) and first["is_current"] is True
        assert first["tasks"] == ["greet"] and first["deployment"]["environment"] == "prod"

        (shop.root / "tasks" / "app.py").write_text(TASKS.replace("{name}", "v2"))
        second = await call(client, "deploy", environment="prod", skip_promotion=True)
        assert second["version"].endswith(".2") and second["is_current"] is False

        listed = await call(client, "list_deploys")
        assert [d["version"] for d in listed["deploys"]] == [second["version"], first["version"]]
        assert listed["current_version"] == first["version"]
        assert [d["is_current"] for d in listed["deploys"]] == [False, True]
        assert all(
            d["status"] == "DEPLOYED" and d["tasks"] == ["greet"] and d["created_at"]
            for d in listed["deploys"]
        )
        text = (await client.call_tool("list_deploys", {})).content[0].text
        assert f"* {first['version']}" in text and "current: " + first["version"] in text

        staging = await client.call_tool(
            "deploy", {"environment": "staging"}
        )  # a prod key, no login
        assert staging.is_error and "no key" in staging.content[0].text

        (shop.root / "tasks" / "broken.py").write_text("import not_a_module_anywhere\n")
        broken = await client.call_tool("deploy", {"environment": "prod"})
        assert broken.is_error and "tasks/broken.py" in broken.content[0].text
    with Client(shop.server.api_url, shop.prod_key) as prod:
        assert prod.deployments.current().version == first["version"]
        assert len(prod.deployments.list().data) == 2  # the broken code uploaded nothing


async def test_with_a_login_token_deploy_reaches_a_branch_preview_it_makes(shop: Shop) -> None:
    (shop.root / "tasks" / "app.py").write_text(TASKS.replace("{name}", "preview"))
    async with session(
        shop.root, CONVEYOR_API_URL=shop.server.api_url, CONVEYOR_ACCESS_TOKEN=shop.token
    ) as client:
        made = await call(client, "deploy", environment="preview", branch="feature-x")
        assert (
            made["deployment"]["environment"] == "preview-feature-x" and made["is_current"] is True
        )
        listed = await call(client, "list_deploys", environment="preview-feature-x")
        assert [d["version"] for d in listed["deploys"]] == [made["version"]]
        prod = await call(client, "list_deploys", environment="prod")
        assert prod["deploys"] == [] and prod["environment"] == "prod"
