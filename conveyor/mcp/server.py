"""The Conveyor MCP server: `build_server` assembles the tools, `serve` runs it over stdio.

Started by `conveyor mcp`. stdout carries the protocol and nothing else: the SDK's own logging
goes to stderr (or to --log-file), and nothing here prints.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from conveyor.mcp.access import Access, ServerOptions
from conveyor.mcp.tools import (
    accounts,
    alerts,
    deploys,
    docs,
    realtime,
    runs,
    schedules,
    tasks,
)
from conveyor.version import __version__

NAME = "conveyor"
INSTRUCTIONS = """\
Operate Conveyor, the durable background-task platform for Python: find tasks
(get_current_worker), trigger them (trigger_task), follow runs (list_runs, get_run_details,
wait_for_run_to_complete; get_run_metadata for the progress a run reports, read_run_stream for
what it streams), cancel or replay them, complete waitpoint tokens, read and make cron
schedules of scheduled tasks (list_schedules, get_schedule, create_schedule), and deploy the
project's code to staging, prod or a preview branch (deploy, only when asked; list_deploys shows
the versions; dev runs the folder's code and takes no deploys). Before writing
or changing task code, search_docs: tasks are `@task`/`@schema_task` functions; side effects
belong in `step.run` because code between durable calls runs again on resume; a
`trigger_and_wait` returns a Result (use `.unwrap()` or `.output`), not the output itself;
recurring work is a `@schedules.task(id=..., cron=...)`, never a sleep loop; progress a user
should see goes in `metadata` (`metadata.set`, `metadata.parent.increment`) and an LLM's tokens
in `streams.pipe`, which backends follow live with `runs.subscribe`, never a jobs table polled.
Without environment/project_ref the tools act on the environment of the key this server runs
with (in a project where `conveyor dev` runs: its dev server). If a tool reports a connection or
key problem, call whoami."""


def build_server(options: ServerOptions) -> MCPServer[Any]:
    """The server with every tool (write tools left out under `options.readonly`)."""
    access = Access(options)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await access.aclose()

    server: MCPServer[Any] = MCPServer(
        NAME,
        title="Conveyor",
        instructions=INSTRUCTIONS,
        version=__version__,
        website_url=None,
        lifespan=lifespan,
        log_level="WARNING",
    )
    for module in (docs, accounts, tasks, runs, realtime, schedules, deploys, alerts):
        module.register(server, access)
    return server


def serve(options: ServerOptions, log_file: Path | None = None) -> None:
    """Run the server over stdio until the client closes the connection."""
    server = build_server(options)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        for existing in list(root.handlers):
            root.removeHandler(existing)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    server.run("stdio")
