"""Fire times of cron schedules across daylight-saving transitions, in time zones of both
hemispheres and one whose clocks move by half an hour: a time skipped in spring fires once at
the next valid instant, a time repeated in autumn fires once, an hourly job follows real hours;
and the checks that refuse a bad expression or zone naming the field."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.cron import SHORTHANDS, Cron, CronError


def at(text: str, zone: str) -> float:
    """Epoch seconds of a wall time in `zone` (the first of a repeated one)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def walls(spec: Cron, start: str, count: int) -> list[str]:
    """The next `count` fire times after `start`, as wall times with their UTC offset."""
    times = spec.upcoming(at(start, spec.timezone), count)
    return [datetime.fromtimestamp(t, spec.zone).isoformat() for t in times]


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # Paris, spring: 02:00 jumps to 03:00 on 29 March 2026; 02:30 does not exist that day
        (
            "Europe/Paris",
            "30 2 * * *",
            "2026-03-28T12:00",
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        # Paris, autumn: 03:00 falls back to 02:00 on 25 October 2026; 02:30 happens twice
        (
            "Europe/Paris",
            "30 2 * * *",
            "2026-10-24T12:00",
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        # New York, spring: 8 March 2026, 02:00 -> 03:00
        (
            "America/New_York",
            "15 2 * * *",
            "2026-03-07T12:00",
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"],
        ),
        # New York, autumn: 1 November 2026, 02:00 -> 01:00; 01:30 happens twice
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00",
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        # Sydney (southern hemisphere), spring: 4 October 2026, 02:00 -> 03:00
        (
            "Australia/Sydney",
            "30 2 * * *",
            "2026-10-03T12:00",
            ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
        ),
        # Sydney, autumn: 5 April 2026, 03:00 -> 02:00; 02:30 happens twice
        (
            "Australia/Sydney",
            "30 2 * * *",
            "2026-04-04T12:00",
            ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
        ),
        # Lord Howe Island moves its clocks by half an hour: 4 October 2026, 02:00 -> 02:30
        (
            "Australia/Lord_Howe",
            "15 2 * * *",
            "2026-10-03T12:00",
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
        ),
        # a weekly job on the day of the change keeps its wall time before and after
        (
            "Europe/Paris",
            "0 9 * * 0",
            "2026-03-21T12:00",
            ["2026-03-22T09:00:00+01:00", "2026-03-29T09:00:00+02:00"],
        ),
    ],
)
def test_a_time_skipped_or_repeated_by_daylight_saving_fires_once(
    zone: str, cron: str, start: str, expected: list[str]
) -> None:
    assert walls(Cron.parse(cron, zone), start, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Paris", "2026-03-29", 23),
        ("Europe/Paris", "2026-10-25", 25),
        ("America/New_York", "2026-11-01", 25),
        ("Australia/Sydney", "2026-10-04", 23),
        ("Asia/Kolkata", "2026-03-29", 24),  # no daylight saving
    ],
)
def test_an_hourly_job_follows_real_hours_through_a_change(zone: str, day: str, hours: int) -> None:
    spec = Cron.parse("@hourly", zone)
    start = at(f"{day}T00:00", zone) - 1
    end = datetime.fromisoformat(f"{day}T00:00").replace(tzinfo=spec.zone) + timedelta(days=1)
    fired = [t for t in spec.upcoming(start, 30) if t < end.timestamp()]
    assert len(fired) == hours
    assert all(b - a == 3600 for a, b in itertools.pairwise(fired))


def test_fire_times_are_whole_seconds_and_utc_is_plain() -> None:
    spec = Cron.parse("*/5 * * * *", "UTC")
    t = datetime(2027, 1, 15, 8, 0, 0, 250_000, tzinfo=UTC).timestamp()
    assert spec.next_after(t) == datetime(2027, 1, 15, 8, 5, tzinfo=UTC).timestamp()
    assert spec.next_after(t - 0.25) == spec.next_after(t)  # strictly after 08:00:00
    assert spec.latest_at_or_before(t, since=0) == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()


ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]
CRONS = ["30 2 * * *", "0 * * * *", "*/7 1-3 * * *", "0 9 * * 1-5", "45 23 L * *", "@daily"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    start=st.floats(min_value=1.7e9, max_value=1.9e9),
)
def test_fire_times_only_move_forward_and_catch_up_finds_the_latest(
    zone: str, cron: str, start: float
) -> None:
    spec = Cron.parse(cron, zone)
    times = spec.upcoming(start, 6)
    assert len(times) == 6 and start < times[0]
    assert all(a < b for a, b in itertools.pairwise(times))
    assert all(t == int(t) for t in times)
    # between two fire times, the latest at or before any moment is the earlier one
    moment = (times[2] + times[3]) / 2
    assert spec.latest_at_or_before(moment, since=times[0]) == times[2]
    assert spec.latest_at_or_before(times[3], since=times[0]) == times[3]


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("60 * * * *", "UTC", "cron: bad minute field '60'"),
        ("0 24 * * *", "UTC", "cron: bad hour field '24'"),
        ("0 0 0 * *", "UTC", "cron: bad day-of-month field '0'"),
        ("0 0 * 13 *", "UTC", "cron: bad month field '13'"),
        ("0 0 * * 8", "UTC", "cron: bad day-of-week field '8'"),
        ("0 0 * * MON-FUN", "UTC", "cron: bad day-of-week field 'MON-FUN'"),
        ("* * *", "UTC", "cron: '* * *' has 3 fields"),
        ("0 0 0 * * *", "UTC", "cron: '0 0 0 * * *' has 6 fields"),
        ("@fortnightly", "UTC", "cron: unknown shorthand '@fortnightly'"),
        ("30 2 31 2 *", "UTC", "cron: '30 2 31 2 *' never fires: no month it names has day 31"),
        ("0 0 30 2 *", "UTC", "cron: '0 0 30 2 *' never fires"),
        ("", "UTC", "cron: must be a cron expression"),
        ("0 9 * * *", "Europe/Lyon", "timezone: unknown time zone 'Europe/Lyon'"),
        ("0 9 * * *", "", "timezone: must be an IANA time zone"),
        ("0 9 * * *", "../../etc/passwd", "timezone: unknown time zone"),
    ],
)
def test_a_bad_expression_or_zone_is_refused_naming_the_field(
    cron: str, zone: str, message: str
) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse(cron, zone)
    assert message in str(caught.value)
    assert caught.value.field == message.split(":")[0]
    if cron.count(" ") == 5:
        assert "seconds are not supported" in str(caught.value)


@pytest.mark.parametrize(("shorthand", "fields"), sorted(SHORTHANDS.items()))
def test_shorthands_are_their_five_fields(shorthand: str, fields: str) -> None:
    assert Cron.parse(shorthand).expression == fields
    assert Cron.parse(shorthand.upper()).expression == fields


def test_the_cron_in_words() -> None:
    assert Cron.parse("0 6 * * *").describe() == "At 06:00 every day"
    assert Cron.parse("*/15 9-17 * * MON-FRI").describe().startswith("Every 15th minute")
