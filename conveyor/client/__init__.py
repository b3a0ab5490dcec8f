"""The client of the HTTP API: `Client` (synchronous) and `AsyncClient`, the same surface.

    from conveyor import Client
    with Client() as client:                      # CONVEYOR_API_URL, CONVEYOR_SECRET_KEY
        handle = client.trigger("my-task", {"url": "..."}, tags=["a"])
        run = client.runs.poll(handle.id, timeout=60)

Backends, the CLI, the MCP server and remote workers all use it. Each operation is written
once, in `_namespaces`, as the `Call` it sends (`_calls`); `Client` carries calls out with
urllib3 and `AsyncClient` with httpx. `default` holds the process-wide client behind
`conveyor.tasks` and `conveyor.runs`.
"""

from conveyor.client._async import AsyncClient
from conveyor.client._calls import DeploymentPage, RunPage
from conveyor.client._sync import Client
from conveyor.client.settings import resolve_settings

__all__ = ["AsyncClient", "Client", "DeploymentPage", "RunPage", "resolve_settings"]
