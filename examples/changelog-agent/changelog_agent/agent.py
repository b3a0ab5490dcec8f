"""The one call to the model: Claude, through the claude-agent-sdk, working in the repository with
read-only tools, answers with a changelog section. Everything around the call (what goes in, what
comes out, which errors are worth a retry) is plain code, tested without the model.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    CLINotFoundError,
    ResultMessage,
    TextBlock,
    query,
)

from changelog_agent.prompt import SYSTEM_PROMPT

READ_ONLY_TOOLS = [
    "Read",
    "Grep",
    "Glob",
    "Bash(git log:*)",
    "Bash(git show:*)",
    "Bash(git diff:*)",
]
NEVER_TOOLS = ["Write", "Edit", "MultiEdit", "NotebookEdit", "WebFetch", "WebSearch"]

Query = Callable[..., AsyncIterator[Any]]


class AgentError(Exception):
    """The agent gave no usable changelog. `retryable`: whether another try may do better."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Answer:
    changelog: str
    turns: int
    cost_usd: float | None
    model: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def options(repo: str, *, max_turns: int = 30, model: str | None = None) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(
        system_prompt=SYSTEM_PROMPT,
        cwd=repo,
        allowed_tools=READ_ONLY_TOOLS,
        disallowed_tools=NEVER_TOOLS,
        max_turns=max_turns,
        model=model or os.environ.get("CHANGELOG_MODEL") or None,
    )


def check_credentials(env: dict[str, str] | os._Environ[str] | None = None) -> None:
    env = os.environ if env is None else env
    if not env.get("ANTHROPIC_API_KEY"):
        raise AgentError(
            "ANTHROPIC_API_KEY is not set on the worker: set it in the environment of "
            "`conveyor dev` or `conveyor worker` to let the agent write changelogs",
            retryable=False,
        )


async def check_network(
    env: dict[str, str] | os._Environ[str] | None = None, *, timeout: float = 5.0
) -> None:
    """Fail in seconds when the model's API cannot be reached (no network, a firewall), rather
    than leave the agent retrying until the task's max_duration."""
    env = os.environ if env is None else env
    url = urlsplit(env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")
    host, port = (
        url.hostname or "api.anthropic.com",
        url.port or (443 if url.scheme == "https" else 80),
    )
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise AgentError(
            f"cannot reach the model's API at {host}:{port} from this worker "
            f"({exc or 'no answer in ' + str(timeout) + ' s'})",
            retryable=True,
        ) from exc
    writer.close()


async def write_changelog(
    prompt: str, repo: str, version: str, *, run_query: Query = query, max_turns: int = 30
) -> Answer:
    """Ask the agent; its answer cleaned to start at the version's heading."""
    final: ResultMessage | None = None
    texts: list[str] = []
    model = None
    try:
        async for message in run_query(prompt=prompt, options=options(repo, max_turns=max_turns)):
            if isinstance(message, AssistantMessage):
                model = message.model
                texts.extend(
                    block.text for block in message.content if isinstance(block, TextBlock)
                )
            elif isinstance(message, ResultMessage):
                final = message
    except CLINotFoundError as exc:
        raise AgentError(
            f"the Claude Code CLI the SDK runs is missing: {exc}", retryable=False
        ) from exc
    if final is None:
        raise AgentError("the agent ended without a result", retryable=True)
    if final.is_error:
        status = final.api_error_status
        retryable = status is None or status == 429 or status >= 500
        raise AgentError(
            f"the agent failed ({final.subtype}{f', HTTP {status}' if status else ''}): "
            f"{(final.result or '')[:300]}",
            retryable=retryable,
        )
    text = final.result if final.result else (texts[-1] if texts else "")
    return Answer(clean(text, version), final.num_turns, final.total_cost_usd, model)


def clean(text: str, version: str) -> str:
    """The changelog section: anything before the first `## ` heading dropped, a heading added if
    there is none, surrounding code fences removed. AgentError if nothing is left."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    heading = body.find("## ")
    if heading > 0 and body[heading - 1] == "\n":
        body = body[heading:]
    elif heading != 0:
        body = f"## {version}\n\n{body}"
    if not any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines()):
        raise AgentError("the agent answered without any changelog entries", retryable=True)
    return body.strip() + "\n"
