"""deploy and list_deploys. Conveyor has no deploys yet: workers run the code they were started
with. The tools exist anyway and say so plainly, with what to do instead."""

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from conveyor.mcp.access import Access
from conveyor.mcp.answers import Deploys, answer, tool_errors
from conveyor.mcp.tools import DESTRUCTIVE, READ, EnvironmentArg, ProjectRefArg, add

NO_DEPLOYS = (
    "Conveyor has no deploys yet: there are no versions to build or upload. Tasks run on the workers of an "
    "environment, with the code those workers were started with: to run new code in staging or prod, restart "
    "`conveyor worker` in the project folder with that environment's key (CONVEYOR_API_URL and "
    "CONVEYOR_SECRET_KEY from `conveyor keys show --project P --env prod`). The worker registers the tasks "
    "when it starts; get_current_worker then lists them. In dev, `conveyor dev` reloads code on every save.")


def register(server: MCPServer[Any], access: Access) -> None:
    async def deploy(environment: EnvironmentArg = None, project_ref: ProjectRefArg = None) -> CallToolResult:
        """Deploy the project's tasks to an environment. Conveyor has no deploys yet: this tool says what to do
        instead. Never deploy unless the user asked for it."""
        with tool_errors():
            access.check_environment(environment)
        raise ToolError(NO_DEPLOYS)

    async def list_deploys(environment: EnvironmentArg = None,
                           project_ref: ProjectRefArg = None) -> Annotated[CallToolResult, Deploys]:
        """List the deploys of an environment. Conveyor has no deploys yet; the answer says how code reaches
        an environment instead."""
        return answer(Deploys(supported=False, deploys=[], message=NO_DEPLOYS), NO_DEPLOYS)

    add(server, access, deploy, DESTRUCTIVE, "Deploy to an environment")
    add(server, access, list_deploys, READ, "List deploys")
