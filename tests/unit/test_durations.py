import re
from datetime import UTC, datetime

import pytest

from conveyor.durations import MAX_SECONDS, parse_duration, resolve_when


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        ("45", 45.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("250ms", 0.25),
        ("1h 5s", 3605.0),
    ],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "5 minutes", "1x", -3, True, "m5", " 5s", "5S", "1h\n", "1h  5s", "1h1m1s1ms1h"],
)
def test_bad_durations_are_refused_with_a_hint(bad):
    with pytest.raises(ValueError, match=r"duration|negative|boolean|seconds"):
        parse_duration(bad)


def test_delay_as_datetime_or_iso_string():
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert resolve_when(moment, 0) == moment.timestamp()
    assert resolve_when("2030-01-01T00:00:00+00:00", 0) == moment.timestamp()
    assert resolve_when("1h", 100.0) == 3700.0


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), 1e300, "9999999999d", 1e18, "99999w", "9" * 10]
)
def test_absurd_durations_are_refused_not_overflowed(bad):
    with pytest.raises(ValueError, match=r"finite|century"):
        parse_duration(bad)


def test_a_duration_too_long_to_write_says_so_rather_than_that_it_is_none():
    with pytest.raises(ValueError, match=r"'100000000w' is too long: a duration is at most a"):
        parse_duration("100000000w", name="ttl")
    with pytest.raises(ValueError, match=r"is not a duration"):
        parse_duration("100000000x", name="ttl")


def test_no_text_the_pattern_admits_is_over_the_limit():
    from conveyor.durations import DURATION_PATTERN

    longest = "99999999999.9ms 99999999.9s 9999999.9m 99999.9h"
    assert re.fullmatch(DURATION_PATTERN, longest)
    for text in (
        longest,
        "999.9w 999.9w 999.9w 999.9w",
        "999.9d 999.9w 9999999.9m 99999.9h",
        "9" * 9,
    ):
        assert parse_duration(text) <= MAX_SECONDS
