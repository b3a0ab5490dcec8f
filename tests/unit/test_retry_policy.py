"""The retry delay follows docs/retries-and-errors.md exactly:
round(min(max, R * min * factor**(n-1)))."""

import random

from conveyor.models import RetryPolicy
from conveyor.retries import retry_delay_ms, should_retry


def test_delay_without_jitter_follows_the_formula():
    policy = RetryPolicy(
        max_attempts=10, factor=1.8, min_timeout_ms=500, max_timeout_ms=30_000, randomize=False
    )
    assert [retry_delay_ms(policy, n) for n in range(1, 6)] == [500, 900, 1620, 2916, 5249]


def test_delay_is_capped_by_max_timeout():
    policy = RetryPolicy(factor=10, min_timeout_ms=1000, max_timeout_ms=5000, randomize=False)
    assert retry_delay_ms(policy, 4) == 5000


def test_jitter_stays_within_one_to_two_times_the_base():
    policy = RetryPolicy(factor=2, min_timeout_ms=1000, max_timeout_ms=10**9, randomize=True)
    rng = random.Random(7)
    delays = [retry_delay_ms(policy, 3, rng) for _ in range(500)]
    assert all(4000 <= d < 8000 for d in delays)
    assert len(set(delays)) > 100  # it really is random


def test_should_retry_counts_attempts_from_one():
    policy = RetryPolicy(max_attempts=3)
    assert should_retry(policy, 1) and should_retry(policy, 2)
    assert not should_retry(policy, 3)
    assert not should_retry(policy, 1, max_attempts=1)
