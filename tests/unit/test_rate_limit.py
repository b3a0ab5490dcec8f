"""The rate limit's parts: token buckets per key, the CONVEYOR_RATE_LIMIT setting, and how
long the client waits before sending a refused call again."""

from __future__ import annotations

import pytest

from conveyor.client._calls import MAX_RETRY_AFTER, REFUSED_RETRIES, retry_delay
from conveyor.errors import ConfigError
from conveyor.server.ratelimit import (
    DEFAULT_RATE_LIMIT,
    KeyBuckets,
    RateLimit,
    is_limited,
    parse_rate_limit,
    rate_limit_from_env,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_spends_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    buckets = KeyBuckets(RateLimit(rate=2, burst=3), clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one request refills in 1/rate seconds
    clock.now += 0.25
    assert buckets.take("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_each_key_has_its_own_bucket() -> None:
    buckets = KeyBuckets(RateLimit(rate=1, burst=1), Clock())
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    buckets = KeyBuckets(RateLimit(rate=10, burst=2), clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_many_keys_do_not_grow_memory_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KeyBuckets, "MAX_KEYS", 10)
    clock = Clock()
    buckets = KeyBuckets(RateLimit(rate=1, burst=5), clock)
    for n in range(50):
        assert buckets.take(f"k{n}") == 0.0
    assert len(buckets._buckets) <= 10


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("100,1000", RateLimit(100, 1000)),
        (" 2.5 , 10 ", RateLimit(2.5, 10)),
        ("50", RateLimit(50, 50)),
        ("0.5", RateLimit(0.5, 1)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_rate_limit_setting(text: str, limit: RateLimit | None) -> None:
    assert parse_rate_limit(text) == limit


@pytest.mark.parametrize(
    "text", ["fast", "100,lots", "-1,10", "0,10", "10,0", "nan,5", "inf,5", "1,2,3"]
)
def test_a_bad_rate_limit_setting_is_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"CONVEYOR_RATE_LIMIT=.*'requests per second,burst'"):
        parse_rate_limit(text)


def test_the_default_is_generous_and_the_variable_overrides_it() -> None:
    assert rate_limit_from_env({}) == DEFAULT_RATE_LIMIT == RateLimit(100, 1000)
    assert rate_limit_from_env({"CONVEYOR_RATE_LIMIT": "5,7"}) == RateLimit(5, 7)
    assert rate_limit_from_env({"CONVEYOR_RATE_LIMIT": "off"}) is None


def test_the_worker_protocol_and_keyless_routes_are_not_limited() -> None:
    assert is_limited("/api/v1/tasks/hello/trigger")
    assert is_limited("/api/v1/runs")
    assert not is_limited("/api/v1/workers/w1/lease")
    assert not is_limited("/healthz")
    assert not is_limited("/openapi.json")


def test_the_client_waits_what_retry_after_says_a_few_times_then_stops() -> None:
    assert retry_delay(429, "2", 0) == 2.0
    assert retry_delay(429, None, 0) == 1.0
    assert retry_delay(429, "Wed, 21 Oct 2037 07:28:00 GMT", 0) == 1.0
    assert retry_delay(429, "-3", 0) == 1.0
    assert retry_delay(429, "1", REFUSED_RETRIES - 1) == 1.0
    assert retry_delay(429, "1", REFUSED_RETRIES) is None
    assert retry_delay(429, str(MAX_RETRY_AFTER + 1), 0) is None  # too long to sit through
    assert retry_delay(200, "1", 0) is None
    assert retry_delay(500, "1", 0) is None  # a bug of the server's is not sent again
    assert retry_delay(503, "1", 0) == 1.0  # the database was unreachable: nothing was done
