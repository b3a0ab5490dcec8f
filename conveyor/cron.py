"""Cron expressions as schedules use them: five fields (minute hour day-of-month month
day-of-week) or a shorthand such as "@daily", read in an IANA time zone.

    spec = Cron.parse("30 2 * * *", "Europe/Paris")
    spec.next_after(t)      # the first fire time strictly after epoch seconds t
    spec.upcoming(t, 5)     # the next five
    spec.latest_at_or_before(t)
    spec.describe()         # "At 02:30 every day"

The parsing and the walk over calendar time are cronsim's, which follows Debian's cron,
daylight saving included: a time that does not exist (the hour skipped in spring) fires once
at the next valid instant, a time that happens twice (the hour repeated in autumn) fires once,
at its first occurrence; a job that runs every hour follows real hours. Pure functions of
their arguments; nothing here reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT",
}
MAX_CRON_LENGTH = 200


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_timezone(name: object) -> ZoneInfo:
    """The zone of an IANA name ("Europe/Paris", "UTC"); CronError naming `timezone` if none."""
    if not isinstance(name, str) or not name.strip():
        raise CronError(
            "timezone", f"must be an IANA time zone such as 'Europe/Paris', got {name!r}"
        )
    return _zone(name.strip())


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(
            "timezone",
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris', "
            "'America/New_York' or 'UTC'",
        ) from None


def normalize(expression: object) -> str:
    """The five fields of `expression` (a shorthand expanded); CronError naming `cron` and the
    field at fault when it is not a valid five-field expression."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError(
            "cron", f"must be a cron expression such as '0 6 * * *', got {expression!r}"
        )
    text = " ".join(expression.split())
    if len(text) > MAX_CRON_LENGTH:
        raise CronError("cron", f"is longer than {MAX_CRON_LENGTH} characters")
    if text.startswith("@"):
        fields = SHORTHANDS.get(text.lower())
        if fields is None:
            raise CronError(
                "cron",
                f"unknown shorthand {text!r}; one of {', '.join(SHORTHANDS)} "
                "or five fields such as '0 6 * * *'",
            )
        return fields
    parts = text.split(" ")
    if len(parts) != 5:
        hint = " (seconds are not supported)" if len(parts) == 6 else ""
        raise CronError(
            "cron",
            f"{text!r} has {len(parts)} fields; a cron expression has five: minute, hour, "
            f"day-of-month, month and day-of-week{hint}",
        )
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        field = _field_of(str(exc))
        days = [int(n) for n in re.findall(r"\d+", parts[2])]
        if field == "day-of-month" and days and all(1 <= n <= 31 for n in days):
            raise CronError(
                "cron", f"{text!r} never fires: no month it names has day {parts[2]}"
            ) from None
        if field is None:
            raise CronError("cron", f"{text!r} is not valid: {exc}") from None
        index = FIELDS.index(field)
        raise CronError(
            "cron",
            f"bad {field} field {parts[index]!r} in {text!r} "
            f"(field {index + 1}; {field} takes {_RANGES[field]}, '*', ranges, lists and steps)",
        ) from None
    return text


def _field_of(message: str) -> str | None:
    lowered = message.lower()
    for field in FIELDS:
        if field in lowered:
            return field
    return None


@dataclass(frozen=True, slots=True)
class Cron:
    """A valid cron expression in a time zone."""

    expression: str  # five fields
    timezone: str

    @classmethod
    def parse(cls, expression: object, timezone: object = "UTC") -> Cron:
        fields = normalize(expression)
        zone = check_timezone(timezone)
        spec = cls(fields, zone.key)
        if spec.next_after(946684800.0) is None:  # 2000-01-01: "30 2 31 2 *" never happens
            raise CronError("cron", f"{fields!r} never fires")
        return spec

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def next_after(self, t: float) -> float | None:
        """The first fire time strictly after epoch seconds `t`, or None if there is none within
        fifty years."""
        return _next_after(self.expression, self.timezone, t)

    def upcoming(self, t: float, count: int = 5) -> list[float]:
        """The next `count` fire times after `t`."""
        times: list[float] = []
        while len(times) < count:
            found = self.next_after(times[-1] if times else t)
            if found is None:
                break
            times.append(found)
        return times

    def latest_at_or_before(self, t: float, since: float) -> float:
        """The most recent fire time in [since, t], given that `since` is one (t >= since)."""
        end = datetime.fromtimestamp(int(t) + 1, self.zone)
        walk = CronSim(self.expression, end, reverse=True)
        try:
            for _ in range(4):
                found = next(walk).timestamp()
                if found <= t:
                    return max(found, since)
        except StopIteration:
            pass
        return since

    def describe(self) -> str:
        """The expression in words: "At 06:00 every day"."""
        return _words(self.expression)


@lru_cache(maxsize=65536)  # many schedules share a cron and fire at the same times
def _next_after(expression: str, timezone: str, t: float) -> float | None:
    """Cron.next_after."""
    zone = _zone(timezone)
    start = datetime.fromtimestamp(t, zone)
    if start.microsecond:
        start = start.replace(microsecond=0)
    walk = CronSim(expression, start)
    try:
        for _ in range(4):  # a wall-clock walk may land on an instant already behind us
            found = next(walk).timestamp()
            if found > t:
                return found
    except StopIteration:
        return None
    return None


@lru_cache(maxsize=4096)
def _words(expression: str) -> str:
    try:
        return CronSim(expression, datetime(2000, 1, 1)).explain()
    except Exception:  # the words are a courtesy; never fail a page over them
        return expression


def iso(t: float) -> datetime:
    """An epoch time as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def local(t: float, timezone: str) -> datetime:
    """An epoch time as a datetime in `timezone`."""
    return datetime.fromtimestamp(t, _zone(timezone))
