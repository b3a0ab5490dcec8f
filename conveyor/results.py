"""What triggering returns: a RunHandle at once, a Result when waiting for a run to end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import TaskRunFailed


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A run that was triggered: its `id`, to retrieve, poll or cancel it."""

    id: str
    task_id: str = ""
    is_cached: bool = False  # an existing run was returned for the same idempotency key


@dataclass(frozen=True, slots=True)
class BatchHandle:
    """A batch that was triggered: its id and one handle per item, in input order."""

    batch_id: str
    runs: list[RunHandle] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Result:
    """How a run ended: `ok` with its `output`, or not ok with its `error`."""

    ok: bool
    id: str
    task_id: str
    output: Any = None
    error: Any = None

    # a Result is how a run ended, not a value to pass on: serialization refuses it with this hint
    __conveyor_json_hint__ = (
        "return result.output, or result.unwrap() to fail when the child failed"
    )

    def unwrap(self) -> Any:
        """The output; raises TaskRunFailed (carrying the run's error) if the run did not complete."""
        if self.ok:
            return self.output
        message = None
        if isinstance(self.error, dict) and self.error.get("message"):
            message = f"run {self.id} of task {self.task_id!r} failed: {self.error['message']}"
        raise TaskRunFailed(message, run_id=self.id, task_id=self.task_id, error=self.error)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """How every run of a batch ended: `runs` in input order."""

    id: str
    runs: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def result_from(data: dict[str, Any]) -> Result:
    return Result(
        ok=bool(data.get("ok")),
        id=data.get("id", ""),
        task_id=data.get("task_id", ""),
        output=data.get("output"),
        error=data.get("error"),
    )


def batch_result_from(answer: dict[str, Any]) -> BatchResult:
    return BatchResult(
        id=answer.get("batch_id") or "", runs=[result_from(r) for r in answer["result"]["runs"]]
    )
