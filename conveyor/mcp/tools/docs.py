"""search_docs and read_docs_page: Conveyor's own documentation, shipped in the package, offline."""

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from conveyor.mcp import docs
from conveyor.mcp.access import Access
from conveyor.mcp.answers import DocHit, DocsAnswer, DocsPage, answer
from conveyor.mcp.tools import READ, add

MAX_SECTION_CHARS = 4_000


def register(server: MCPServer[Any], access: Access) -> None:
    async def search_docs(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="What to look for, in a few words: 'retry backoff formula', "
                "'wait for a token', 'concurrency key'",
            ),
        ],
        limit: Annotated[int, Field(ge=1, le=20, description="How many sections to return")] = 5,
    ) -> Annotated[CallToolResult, DocsAnswer]:
        """Search Conveyor's documentation (the docs of the installed version, offline) and return
        the best-matching sections in full. Use it before writing task code or answering how
        Conveyor works: tasks, triggering, queues, retries, waits and tokens, durable execution
        (what replay asks of code), logs, workers, the CLI, the HTTP API and configuration."""
        hits = docs.default_index().search(query, limit)
        results = [
            DocHit(
                page=h.section.page,
                title=h.section.title,
                section=h.section.heading or h.section.title,
                link=h.section.link,
                text=h.section.text[:MAX_SECTION_CHARS],
            )
            for h in hits
        ]
        if not results:
            return answer(
                DocsAnswer(query=query, results=[]),
                f"No section of the docs matches {query!r}. Try other words, or "
                "read_docs_page('README.md') for the list of pages.",
            )
        text = "\n\n".join(f"## {r.title} › {r.section}  ({r.link})\n{r.text}" for r in results)
        return answer(DocsAnswer(query=query, results=results), text)

    async def read_docs_page(
        page: Annotated[
            str,
            Field(
                description="Path of a page under docs/, as search_docs gives it, e.g. "
                "'durable-execution.md'; 'README.md' lists every page"
            ),
        ],
    ) -> Annotated[CallToolResult, DocsPage]:
        """Read one whole page of Conveyor's documentation."""
        text = docs.page_text(page.removeprefix("docs/").split("#")[0])
        if text is None:
            raise ToolError(f"no docs page {page!r}; read_docs_page('README.md') lists the pages")
        return answer(DocsPage(page=page, text=text), text)

    add(server, access, search_docs, READ, "Search the Conveyor docs")
    add(server, access, read_docs_page, READ, "Read a Conveyor docs page")
