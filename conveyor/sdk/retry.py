"""`retry.on_throw`: retry a block of code in place, with the same backoff as run retries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from conveyor.errors import AbortTaskRunError
from conveyor.models import RetryPolicy
from conveyor.retries import retry_delay_ms
from conveyor.sdk.logger import logger


class _Retry:
    async def on_throw(
        self,
        fn: Callable[..., Any],
        *args: Any,
        max_attempts: int = 3,
        factor: float = 2,
        min_timeout_ms: int = 1000,
        max_timeout_ms: int = 60_000,
        randomize: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Call `fn(*args, **kwargs)` (sync or async) until it returns, at most `max_attempts`
        times, sleeping per the retry formula between tries. The last error is raised;
        AbortTaskRunError is never retried."""
        policy = RetryPolicy(
            max_attempts=max_attempts,
            factor=factor,
            min_timeout_ms=min_timeout_ms,
            max_timeout_ms=max_timeout_ms,
            randomize=randomize,
        )
        attempt = 1
        while True:
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except AbortTaskRunError:
                raise
            except Exception as exc:
                if attempt >= policy.max_attempts:
                    raise
                delay = retry_delay_ms(policy, attempt) / 1000.0
                logger.warn(
                    f"retry.on_throw: attempt {attempt} failed, retrying in {delay:.2f}s",
                    error=f"{type(exc).__name__}: {exc}",
                )
                await asyncio.sleep(delay)
                attempt += 1


retry = _Retry()
