"""Queues: a name and the limits shared by every task that uses it (how many of its runs execute
at once, how many start in a window of time), and how its concurrency keys share its slots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from conveyor.errors import TaskDefinitionError, validation_summary
from conveyor.models import QueueSpec, RateLimit


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue. `concurrency_limit` caps how many of its runs execute at once (per concurrency
    key, when runs are triggered with one); None leaves only the environment's limit.
    `rate_limit` caps how many start in any window of its period (per concurrency key too).
    `weights` give some concurrency keys more turns than others (keys not named weigh 1)."""

    name: str
    concurrency_limit: int | None = None
    rate_limit: RateLimit | None = None
    weights: Mapping[str, int] | None = field(default=None, hash=False)

    def spec(self) -> QueueSpec:
        return QueueSpec(
            name=self.name,
            concurrency_limit=self.concurrency_limit,
            rate_limit=self.rate_limit,
            weights=dict(self.weights) if self.weights else None,
        )


def queue(
    name: str,
    concurrency_limit: int | None = None,
    *,
    rate_limit: RateLimit | Mapping[str, Any] | None = None,
    weights: Mapping[str, int] | None = None,
) -> Queue:
    """Declare a queue: `openai = queue("openai-calls", concurrency_limit=5,
    rate_limit={"limit": 500, "period": "1m"})`."""
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
    try:
        spec = QueueSpec(
            name=name,
            concurrency_limit=concurrency_limit,
            rate_limit=rate_limit,
            weights=dict(weights) if isinstance(weights, Mapping) else weights,
        )
    except ValidationError as exc:
        raise TaskDefinitionError(f"queue {name!r}: {validation_summary(exc)}") from None
    return Queue(name, concurrency_limit, spec.rate_limit, spec.weights)


def as_queue(value: Any, default_name: str) -> Queue:
    """A Queue from what a task or trigger option may say: a Queue, a name, or a dict."""
    if value is None:
        return Queue(default_name)
    if isinstance(value, Queue):
        return value
    if isinstance(value, str):
        return queue(value)
    if isinstance(value, dict):
        unknown = set(value) - {"name", "concurrency_limit", "rate_limit", "weights"}
        if unknown or "name" not in value:
            raise TaskDefinitionError(
                "a queue dict has 'name' and optionally 'concurrency_limit', 'rate_limit' and "
                f"'weights', got {sorted(value)}"
            )
        return queue(
            value["name"],
            value.get("concurrency_limit"),
            rate_limit=value.get("rate_limit"),
            weights=value.get("weights"),
        )
    raise TaskDefinitionError(
        f"queue must be a queue(...), a name or a dict, not {type(value).__name__}"
    )
