"""`write-changelog` run by `testing.run`, in this process: the real task on a real repository, with
the model replaced by a function of the test. Retries happen at once (the task waits 5 s and more
between attempts on a platform) and the journal shows what a retry did not do again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from changelog_agent import agent
from tasks.changelog import write_changelog

from conveyor import RunStatus, testing


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A model that fails twice as an overloaded API does, then writes a changelog. The prompts
    it got are returned."""
    prompts: list[str] = []

    async def write(prompt: str, repo: str, version: str) -> agent.Answer:
        prompts.append(prompt)
        if len(prompts) < 3:
            raise agent.AgentError("the API is overloaded (529)", retryable=True)
        return agent.Answer(
            f"## {version}\n\n- Add card payments", turns=4, cost_usd=0.01, model="m"
        )

    async def online(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(agent, "check_credentials", lambda *args, **kwargs: None)
    monkeypatch.setattr(agent, "check_network", online)
    monkeypatch.setattr(agent, "write_changelog", write)
    return prompts


def test_an_overloaded_model_is_retried_and_the_history_is_read_once(
    repo: Path, model: list[str]
) -> None:
    result = testing.run_sync(write_changelog, {"repo": str(repo), "version": "1.1.0"})

    assert result.ok, result.error
    assert result.attempts == 3 and len(model) == 3
    assert result.output["commits"] == 3 and result.output["changelog"].startswith("## 1.1.0")
    # the history is a step: read on the first attempt, replayed from the journal on the others
    assert [e.key for e in result.journal] == ["step:read-history#1", "step:write-changelog#1"]
    assert result.messages().count("history read") == 3  # logged by each attempt


def test_a_wrong_ref_fails_at_once_without_asking_the_model(repo: Path, model: list[str]) -> None:
    result = testing.run_sync(write_changelog, {"repo": str(repo), "since": "v9.9"})

    assert result.status == RunStatus.FAILED and result.attempts == 1
    assert "v9.9" in result.error["message"] and model == []
