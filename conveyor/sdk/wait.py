"""`wait`: durable waits that suspend the run and free its slot.

    await wait.for_(seconds=30)
    await wait.until(datetime(2027, 1, 1, tzinfo=UTC))
    token = await wait.create_token(timeout="24h", idempotency_key="approval-42")
    result = await wait.for_token(token)          # Result: ok is False on timeout
    await wait.complete_token(token.id, {"approved": True})

A wait longer than a few seconds suspends the run (WAITING: no slot, no process); it resumes
on any worker when the wait ends and replays to where it was.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from conveyor.durations import parse_duration
from conveyor.errors import ConveyorError, InvalidRequest
from conveyor.models import Token
from conveyor.results import Result
from conveyor.sdk.context import current_scope
from conveyor.serialization import to_json_value


def _durable(what: str) -> Any:
    scope = current_scope()
    if scope is None or scope.durable is None:
        raise ConveyorError(f"{what} suspends a run, so it only works inside a task's run function")
    return scope.durable


class Wait:
    async def for_(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> None:
        """Wait a duration, durably: after a crash or a suspension the run waits only what is
        left."""
        total = seconds + minutes * 60 + hours * 3600 + days * 86400
        if total < 0:
            raise InvalidRequest("wait.for_ needs a duration >= 0")
        durable = _durable("wait.for_")
        # timed by the engine's clock
        await durable.sleep_until("wait.for", time.time() + total, seconds=total)

    async def until(self, when: datetime) -> None:
        """Wait until a point in time (a naive datetime is taken as UTC)."""
        if not isinstance(when, datetime):
            raise InvalidRequest("wait.until takes a datetime")
        moment = when if when.tzinfo else when.replace(tzinfo=UTC)
        durable = _durable("wait.until")
        await durable.sleep_until("wait.until", moment.timestamp())

    async def create_token(
        self,
        *,
        timeout: float | str | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
        idempotency_key_ttl: float | str | None = None,
    ) -> Token:
        """A token that something outside the run completes; `timeout` ("24h", seconds) ends the
        wait with ok=False. The same idempotency_key gives the same token."""
        try:
            seconds = parse_duration(timeout, name="timeout") if timeout is not None else None
            key_ttl = (
                parse_duration(idempotency_key_ttl, name="idempotency_key_ttl")
                if idempotency_key_ttl is not None
                else None
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        scope = current_scope()
        if scope is not None and scope.durable is not None:
            return Token.model_validate(
                await scope.durable.create_token(seconds, idempotency_key, tags, key_ttl)
            )
        from conveyor.client.default import default_client

        return await default_client().waitpoints.create_token(
            timeout=seconds,
            idempotency_key=idempotency_key,
            tags=tags,
            idempotency_key_ttl=key_ttl,
        )

    async def for_token(self, token: Token | str) -> Result[Any]:
        """Wait until the token is completed (ok, with its data as output) or times out (not ok)."""
        token_id = token.id if isinstance(token, Token) else token
        result = await _durable("wait.for_token").wait_token(token_id)
        return Result(
            ok=bool(result.get("ok")),
            id=token_id,
            task_id="",
            output=result.get("output"),
            error=result.get("error"),
        )

    async def complete_token(self, token: Token | str, data: Any = None) -> None:
        """Complete a token with JSON data; runs waiting on it resume. Works anywhere."""
        token_id = token.id if isinstance(token, Token) else token
        value = to_json_value(data, "data")
        scope = current_scope()
        if scope is not None and scope.durable is not None:
            await scope.durable.complete_token(token_id, value)
            return
        from conveyor.client.default import default_client

        await default_client().waitpoints.complete_token(token_id, value)


wait = Wait()
