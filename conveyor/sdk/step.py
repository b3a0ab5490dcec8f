"""`step`: side effects done once per run, and values that stay the same across replays.

    receipt = await step.run("charge-card", charge, order_id)   # runs once; replays get the result
    started = await step.now()                                   # the same datetime on every replay
    request_id = await step.uuid()

A run's function runs again from the top when it resumes; code outside steps runs again too.
Put every side effect (a payment, an email, a write elsewhere) in `step.run`.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conveyor.errors import InvalidRequest
from conveyor.sdk.context import current_scope


class Step:
    async def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` (sync or async) once per run and journal its JSON result.
        If it raises, nothing is journaled and the error propagates (the attempt may be retried)."""
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidRequest("step.run needs a name of 1 to 200 characters")
        scope = current_scope()
        if scope is None or scope.durable is None:
            result = fn(*args, **kwargs)
            if hasattr(result, "__await__"):
                result = await result
            return result
        return await scope.durable.step(name, fn, args, kwargs)

    async def now(self) -> datetime:
        """The current time, taken once per run: a replay gets the same value."""
        scope = current_scope()
        if scope is None or scope.durable is None:
            return datetime.now(UTC)
        value = await scope.durable.remembered("now", lambda: datetime.now(UTC).isoformat())
        return datetime.fromisoformat(value)

    async def uuid(self) -> str:
        """A random UUID, made once per run: a replay gets the same value."""
        scope = current_scope()
        if scope is None or scope.durable is None:
            return str(_uuid.uuid4())
        value: str = await scope.durable.remembered("uuid", lambda: str(_uuid.uuid4()))
        return value


step = Step()
