"""`write-changelog`: read a repository's history, let Claude write the changelog section.

An agent may work for many minutes (it reads files, runs git), so the task allows 30 minutes of
compute. Both slow parts are steps: a retry after a failure does not read the history again, and
a changelog the model has written is never paid for twice.
"""

from __future__ import annotations

from typing import Any

from changelog_agent import agent
from changelog_agent.history import HistoryError, read_history
from changelog_agent.prompt import build_prompt
from pydantic import BaseModel, Field

from conveyor import AbortTaskRunError, Context, logger, schema_task, step


class ChangelogRequest(BaseModel):
    repo: str = Field(description="path of a git repository on the worker")
    since: str | None = Field(None, description="tag or commit; default: the latest tag")
    until: str = "HEAD"
    version: str = "Unreleased"
    max_commits: int = Field(500, ge=1, le=5000)


def _read(payload: ChangelogRequest) -> dict[str, Any]:
    try:
        return read_history(payload.repo, payload.since, payload.until, payload.max_commits)
    except HistoryError as exc:
        raise AbortTaskRunError(str(exc)) from exc  # a wrong path or ref stays wrong


async def _ask(prompt: str, repo: str, version: str) -> dict[str, Any]:
    try:
        answer = await agent.write_changelog(prompt, repo, version)
    except agent.AgentError as exc:
        if not exc.retryable:
            raise AbortTaskRunError(str(exc)) from exc
        raise
    return answer.to_json()


@schema_task(
    id="write-changelog",
    schema=ChangelogRequest,
    max_duration=1800,
    machine="small-2x",
    retry={"max_attempts": 3, "min_timeout_ms": 5_000, "max_timeout_ms": 60_000},
)
async def write_changelog(payload: ChangelogRequest, ctx: Context) -> dict:
    history = await step.run("read-history", _read, payload)
    commits = len(history["commits"])
    logger.info(
        "history read", range=history["range"], commits=commits, truncated=history["truncated"]
    )
    if commits == 0:
        return {
            "version": payload.version,
            "range": history["range"],
            "commits": 0,
            "changelog": "",
        }
    try:
        agent.check_credentials()
    except agent.AgentError as exc:
        raise AbortTaskRunError(str(exc)) from exc
    # seconds, not the 30 minutes of max_duration, when offline (retried)
    await agent.check_network()
    answer = await step.run(
        "write-changelog",
        _ask,
        build_prompt(history, payload.version),
        payload.repo,
        payload.version,
    )
    logger.info(
        "changelog written",
        turns=answer["turns"],
        cost_usd=answer["cost_usd"],
        model=answer["model"],
    )
    return {"version": payload.version, "range": history["range"], "commits": commits, **answer}
