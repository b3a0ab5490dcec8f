"""`testing.run`: a task's run in the test's own process, its durable calls answered in memory.

    result = await testing.run(
        process_order, {"order_id": 42},
        mocks=[testing.mock(charge_card, output={"receipt": "r-1"})],
        tokens=[testing.complete_token({"approved": True}, idempotency_key="approval-42")],
    )
    assert result.ok and result.output == {...}
    assert [line.message for line in result.logs] == [...]

The task's code runs unchanged: steps run once per run, children run inline (their durable calls
too) unless mocked, waits jump a virtual clock instead of sleeping, failed attempts are retried
per the task's policy without sleeping, and a run blocked on a waitpoint is suspended and runs
again from the top, answered from its journal, as on the platform. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.models import RunStatus, dump_trigger_options
from conveyor.results import Result
from conveyor.sdk.task import Task
from conveyor.testing.memory import (
    JournalRecord,
    LogLine,
    Mock,
    RunState,
    TokenCompletion,
    World,
)


@dataclass(frozen=True, slots=True)
class RunResult(Result):
    """How a test run ended (a `Result`: `ok`, `output`, `error`, `unwrap()`), and what a test
    may check besides: its `status`, the `attempts` it took, its `logs`, its `journal` (the
    durable calls it made, in order), and the `children` it triggered, each a RunResult too."""

    status: RunStatus = RunStatus.COMPLETED
    attempts: int = 0
    payload: Any = None
    logs: list[LogLine] = field(default_factory=list)
    journal: list[JournalRecord] = field(default_factory=list)
    children: list[RunResult] = field(default_factory=list)
    mocked: bool = False  # a run of a mocked task: it ended at once with the mock's answer
    tags: list[str] = field(default_factory=list)

    def runs_of(self, task: Task[Any] | str) -> list[RunResult]:
        """Every run of `task` this run started, directly or through its children, in order."""
        task_id = task.id if isinstance(task, Task) else task
        found = []
        for child in self.children:
            if child.task_id == task_id:
                found.append(child)
            found.extend(child.runs_of(task_id))
        return found

    def messages(self, level: str | None = None) -> list[str]:
        """The messages of this run's log lines (of one level when given), in order."""
        return [line.message for line in self.logs if level is None or line.level == level]


def mock(task: Task[Any] | str, *, output: Any = None, error: Any = None) -> Mock:
    """Replace the runs of `task` in a test run: each ends at once with `output` (a JSON value,
    or a function called with the payload), or fails with `error` (an exception, a message or an
    error dict). Pass it in `testing.run(..., mocks=[...])`; `.calls` lists the payloads it got."""
    return Mock(task, output=output, error=error)


def complete_token(
    data: Any = None, *, idempotency_key: str | None = None, tags: list[str] | None = None
) -> TokenCompletion:
    """Complete a token a run waits on: the first token waited on with this idempotency key
    (or carrying all these tags, or any token when neither is given) is completed with `data`,
    or with `data(token)` when `data` is a function. Pass it in `testing.run(..., tokens=[...])`.
    A token nothing completes times out when it has a timeout (the clock jumps there)."""
    return TokenCompletion(data, idempotency_key=idempotency_key, tags=tags)


async def run(
    task: Task[Any],
    payload: Any = None,
    *,
    mocks: Iterable[Mock] = (),
    tokens: Iterable[TokenCompletion] = (),
    tasks: Iterable[Task[Any]] = (),
    options: dict[str, Any] | None = None,
    now: datetime | None = None,
    environment: str = "dev",
    seed: int | None = 0,
) -> RunResult:
    """Run `task` with `payload` in this process and return how it ended (never raises for the
    run's failure: check `result.ok`, or `result.unwrap()`).

    `mocks`: `testing.mock(...)` answers for child tasks. `tokens`: `testing.complete_token(...)`
    completions. `tasks`: tasks its children may run, when they are not defined at module level
    in code already imported. `options`: trigger options of the run (`tags`, `metadata`,
    `max_attempts`, ...). `now`: where the virtual clock starts (default: the real time).
    `seed`: the retry jitter's seed. RunStalled when the run waits on something nothing will
    complete (a token without a timeout that no completion matches)."""
    if not isinstance(task, Task):
        raise TypeError(f"testing.run takes a task (made with @task), not {type(task).__name__}")
    mock_list = list(mocks)
    for item in mock_list:
        if not isinstance(item, Mock):
            raise TypeError("mocks= takes testing.mock(...) values")
    completions = list(tokens)
    for completion in completions:
        if not isinstance(completion, TokenCompletion):
            raise TypeError("tokens= takes testing.complete_token(...) values")
    known = {t.id: t for t in tasks}
    known.setdefault(task.id, task)
    start = now if now is not None else datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    body = task.prepare_payload(payload)
    from conveyor.models import TriggerOptions

    trigger_options = TriggerOptions.model_validate(dump_trigger_options(options or {}))
    world = World(
        tasks=known,
        mocks={m.task_id: m for m in mock_list},
        completions=completions,
        now=start.timestamp(),
        environment=environment,
        seed=seed,
    )
    try:
        root, _ = world.create_run(task.id, body, trigger_options)
        await world.run_until_ended(root)
    finally:
        await world.close()
    return _result(world, root)


def _result(world: World, run: RunState) -> RunResult:
    base = run.result()
    return RunResult(
        ok=base["ok"],
        id=run.id,
        task_id=run.task_id,
        output=base["output"],
        error=base["error"],
        status=run.status,
        attempts=run.attempt,
        payload=run.payload,
        logs=list(run.logs),
        journal=[entry.snapshot() for entry in run.journal.values()],
        children=[_result(world, world.runs[child]) for child in run.children],
        mocked=run.mocked,
        tags=list(run.tags),
    )


def run_sync(task: Task[Any], payload: Any = None, **kwargs: Any) -> RunResult:
    """`testing.run` for a test that is not async (it runs its own event loop)."""
    return asyncio.run(run(task, payload, **kwargs))
