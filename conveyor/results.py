"""What triggering returns: a RunHandle at once, a Result when waiting for a run to end.

Each is generic in the output of the task that made it, so `await child.trigger_and_wait(p)` of
a task returning `dict` is a `Result[dict]`; an unparameterized `Result` is `Result[Any]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic

from typing_extensions import TypeVar

from conveyor.errors import TaskRunFailed

# what the task's run function returns (the awaited value for an `async def`)
OutputT = TypeVar("OutputT", covariant=True, default=Any)

# Frozen but not slots=True: on Python 3.11 a frozen, slotted, generic dataclass cannot be made
# through its subscript (`Result[int](...)` fails setting `__orig_class__`).


@dataclass(frozen=True)
class RunHandle(Generic[OutputT]):
    """A run that was triggered: its `id`, to retrieve, poll or cancel it."""

    id: str
    task_id: str = ""
    is_cached: bool = False  # an existing run was returned for the same idempotency key


@dataclass(frozen=True)
class BatchHandle(Generic[OutputT]):
    """A batch that was triggered: its id and one handle per item, in input order."""

    batch_id: str
    runs: list[RunHandle[OutputT]] = field(default_factory=list)
    is_cached: bool = False  # the batch its idempotency key held was returned, no run made


@dataclass(frozen=True)
class Result(Generic[OutputT]):
    """How a run ended: `ok` with its `output`, or not ok with its `error`.

    `output` is typed as the task's output; it is None when the run did not complete, so read
    it after checking `ok`, or call `unwrap()`, which raises instead."""

    ok: bool
    id: str
    task_id: str
    output: OutputT = None  # type: ignore[assignment]  # None when not ok, see the docstring
    error: Any = None

    # a Result is how a run ended, not a value to pass on: serialization refuses it with this hint
    __conveyor_json_hint__ = (
        "return result.output, or result.unwrap() to fail when the child failed"
    )

    def unwrap(self) -> OutputT:
        """The output; raises TaskRunFailed (carrying the run's error) if the run did not
        complete."""
        if self.ok:
            return self.output
        message = None
        if isinstance(self.error, dict) and self.error.get("message"):
            message = f"run {self.id} of task {self.task_id!r} failed: {self.error['message']}"
        raise TaskRunFailed(message, run_id=self.id, task_id=self.task_id, error=self.error)


@dataclass(frozen=True)
class BatchResult(Generic[OutputT]):
    """How every run of a batch ended: `runs` in input order."""

    id: str
    runs: list[Result[OutputT]] = field(default_factory=list)
    is_cached: bool = False  # the batch its idempotency key held was waited for, no run made

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def result_from(data: dict[str, Any]) -> Result[Any]:
    return Result(
        ok=bool(data.get("ok")),
        id=data.get("id", ""),
        task_id=data.get("task_id", ""),
        output=data.get("output"),
        error=data.get("error"),
    )


def batch_result_from(answer: dict[str, Any]) -> BatchResult[Any]:
    return BatchResult(
        id=answer.get("batch_id") or "",
        runs=[result_from(r) for r in answer["result"]["runs"]],
        is_cached=bool(answer.get("is_cached")),
    )
