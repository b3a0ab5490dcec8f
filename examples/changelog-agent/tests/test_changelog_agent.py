"""Everything around the model call: the options the agent gets, how its messages become a
changelog, and which failures are worth a retry. The SDK's `query` is replaced by a script of the
SDK's own message types."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from changelog_agent.agent import (
    NEVER_TOOLS,
    AgentError,
    check_credentials,
    check_network,
    clean,
    write_changelog,
)
from changelog_testing import EXAMPLE
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    CLINotFoundError,
    ResultMessage,
    TextBlock,
)

CHANGELOG = (
    "## 1.1.0\n\n### Added\n- Card payments.\n\n### Fixed\n- The total of an empty cart is 0."
)


def result(**fields: Any) -> ResultMessage:
    defaults: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 1200,
        "duration_api_ms": 900,
        "is_error": False,
        "num_turns": 3,
        "session_id": "s1",
        "total_cost_usd": 0.0123,
        "result": CHANGELOG,
    }
    return ResultMessage(**{**defaults, **fields})


class Script:
    """Stands in for claude_agent_sdk.query: records the call, yields the given messages."""

    def __init__(self, *messages: Any, raises: Exception | None = None) -> None:
        self.messages = messages
        self.raises = raises
        self.calls: list[tuple[str, ClaudeAgentOptions]] = []

    def __call__(self, *, prompt: str, options: ClaudeAgentOptions) -> AsyncIterator[Any]:
        self.calls.append((prompt, options))

        async def stream() -> AsyncIterator[Any]:
            for message in self.messages:
                yield message
            if self.raises:
                raise self.raises

        return stream()


def ask(script: Script, version: str = "1.1.0") -> Any:
    return asyncio.run(write_changelog("the prompt", "/srv/shop", version, run_query=script))


def test_the_agent_works_in_the_repository_with_read_only_tools() -> None:
    script = Script(
        AssistantMessage(content=[TextBlock("Let me look.")], model="claude-sonnet-4-5"), result()
    )
    answer = ask(script)
    assert answer.changelog == CHANGELOG + "\n"
    assert (answer.turns, answer.cost_usd, answer.model) == (3, 0.0123, "claude-sonnet-4-5")
    [(prompt, options)] = script.calls
    assert prompt == "the prompt" and str(options.cwd) == "/srv/shop" and options.max_turns == 30
    assert "Read" in options.allowed_tools and "Bash(git log:*)" in options.allowed_tools
    assert not {"Write", "Edit", "Bash"} & set(options.allowed_tools)
    assert set(NEVER_TOOLS) <= set(options.disallowed_tools)
    assert "changelog" in str(options.system_prompt).lower()


def test_without_a_result_text_the_last_assistant_text_is_used() -> None:
    script = Script(
        AssistantMessage(content=[TextBlock("Here it is:\n\n" + CHANGELOG)], model="m"),
        result(result=None),
    )
    assert ask(script).changelog == CHANGELOG + "\n"


@pytest.mark.parametrize(
    ("status", "retryable"), [(None, True), (429, True), (529, True), (401, False), (400, False)]
)
def test_an_error_result_says_whether_a_retry_can_help(status: int | None, retryable: bool) -> None:
    script = Script(
        result(
            is_error=True, subtype="error_during_execution", api_error_status=status, result="boom"
        )
    )
    with pytest.raises(AgentError, match="the agent failed") as caught:
        ask(script)
    assert caught.value.retryable is retryable


def test_no_result_is_retryable_and_a_missing_cli_is_not() -> None:
    with pytest.raises(AgentError, match="without a result") as caught:
        ask(Script(AssistantMessage(content=[TextBlock("hm")], model="m")))
    assert caught.value.retryable
    with pytest.raises(AgentError, match="CLI the SDK runs is missing") as caught:
        ask(Script(raises=CLINotFoundError("claude not found")))
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHANGELOG, CHANGELOG + "\n"),
        ("Sure! Here is the changelog.\n\n" + CHANGELOG, CHANGELOG + "\n"),
        ("```markdown\n" + CHANGELOG + "\n```", CHANGELOG + "\n"),
        ("### Added\n- Card payments.", "## 1.1.0\n\n### Added\n- Card payments.\n"),
    ],
)
def test_the_answer_is_cleaned_to_the_section(text: str, expected: str) -> None:
    assert clean(text, "1.1.0") == expected


@pytest.mark.parametrize("text", ["", "## 1.1.0", "## 1.1.0\n\n### Added\n"])
def test_an_answer_without_entries_is_refused(text: str) -> None:
    with pytest.raises(AgentError, match="without any changelog entries"):
        clean(text, "1.1.0")


def test_credentials_are_checked_before_the_call() -> None:
    with pytest.raises(AgentError, match="ANTHROPIC_API_KEY is not set") as caught:
        check_credentials({})
    assert not caught.value.retryable
    check_credentials({"ANTHROPIC_API_KEY": "sk-ant-test"})


def test_the_sdk_is_external_in_the_build_config_and_the_task_may_run_long() -> None:
    config = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["conveyor"]
    assert config["build"]["external"] == ["claude-agent-sdk"]
    assert config["max_duration"] >= 1800


def test_an_unreachable_model_api_fails_in_seconds_and_may_be_retried() -> None:
    import asyncio
    import socket
    import time

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(
        AgentError, match=f"cannot reach the model's API at 127.0.0.1:{port}"
    ) as caught:
        asyncio.run(check_network({"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}, timeout=2))
    assert caught.value.retryable and time.monotonic() - started < 5
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        asyncio.run(
            check_network({"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{listening.getsockname()[1]}"})
        )
