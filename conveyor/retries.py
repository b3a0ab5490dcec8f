"""The retry policy: when a failed attempt is tried again. Pure functions, no I/O, shared by
the engine (a failed run's next attempt) and the sdk (`retry.on_throw` in task code).

After failed attempt n (1-based) the next attempt waits

    delay_ms = round(min(max_timeout_ms, R * min_timeout_ms * factor ** (n - 1)))

where R is uniform in [1, 2) when `randomize` is set and exactly 1 otherwise. The jitter spreads
retries of many runs that failed together, so they do not hit a struggling service at once.
"""

from __future__ import annotations

import random

from conveyor.models import RetryPolicy


def retry_delay_ms(
    policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None
) -> int:
    """Milliseconds to wait after `failed_attempt` (1-based) before the next attempt."""
    r = (rng or random).uniform(1.0, 2.0) if policy.randomize else 1.0
    if r >= 2.0:  # uniform() may return its upper bound; the formula wants [1, 2)
        r = 1.0
    raw = r * policy.min_timeout_ms * policy.factor ** (failed_attempt - 1)
    return round(min(policy.max_timeout_ms, raw))


def should_retry(policy: RetryPolicy, failed_attempt: int, max_attempts: int | None = None) -> bool:
    """Whether another attempt follows `failed_attempt` under the policy (or an override)."""
    return failed_attempt < (max_attempts if max_attempts is not None else policy.max_attempts)
