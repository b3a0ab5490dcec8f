"""Queues: a name and a concurrency limit shared by every task that uses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.errors import TaskDefinitionError
from conveyor.models import QueueSpec


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue. `concurrency_limit` caps how many of its runs execute at once (per concurrency
    key, when runs are triggered with one); None leaves only the environment's limit."""

    name: str
    concurrency_limit: int | None = None

    def spec(self) -> QueueSpec:
        return QueueSpec(name=self.name, concurrency_limit=self.concurrency_limit)


def queue(name: str, concurrency_limit: int | None = None) -> Queue:
    """Declare a queue: `openai = queue("openai-calls", concurrency_limit=5)`."""
    if not isinstance(name, str) or not name or len(name) > 128:
        raise TaskDefinitionError(
            f"queue name must be a string of 1 to 128 characters, got {name!r}"
        )
    if concurrency_limit is not None and (
        isinstance(concurrency_limit, bool)
        or not isinstance(concurrency_limit, int)
        or concurrency_limit < 0
    ):
        raise TaskDefinitionError(
            f"queue {name!r}: concurrency_limit must be a whole number >= 0, got "
            f"{concurrency_limit!r}"
        )
    return Queue(name, concurrency_limit)


def as_queue(value: Any, default_name: str) -> Queue:
    """A Queue from what a task or trigger option may say: a Queue, a name, or a dict."""
    if value is None:
        return Queue(default_name)
    if isinstance(value, Queue):
        return value
    if isinstance(value, str):
        return queue(value)
    if isinstance(value, dict):
        unknown = set(value) - {"name", "concurrency_limit"}
        if unknown or "name" not in value:
            raise TaskDefinitionError(
                f"a queue dict has 'name' and optionally 'concurrency_limit', got {sorted(value)}"
            )
        return queue(value["name"], value.get("concurrency_limit"))
    raise TaskDefinitionError(
        f"queue must be a queue(...), a name or a dict, not {type(value).__name__}"
    )
