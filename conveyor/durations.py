"""Durations and points in time as users write them: 30, "90s", "1h30m", "2d", or a datetime.

Pure functions; nothing here reads the clock except `resolve_when`, which is given `now`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

MAX_SECONDS = 100 * 365 * 86400.0  # a century: beyond it a duration is a mistake, not a plan

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# A duration as text, the one form the API documents and takes: seconds, or up to four parts
# such as "1h30m" or "1h 5s". Each unit has as many digits as keep it under twenty years, so no
# text that matches is over the century limit (the OpenAPI document says the same pattern).
_UNIT_PART = (
    r"(\d{1,11}(\.\d+)?ms|\d{1,8}(\.\d+)?s|\d{1,7}(\.\d+)?m|\d{1,5}(\.\d+)?h|"
    r"\d{1,3}(\.\d+)?d|\d{1,3}(\.\d+)?w)"
)
DURATION_PATTERN = rf"^(\d{{1,9}}(\.\d+)?|{_UNIT_PART}( ?{_UNIT_PART}){{0,3}})$"
_DURATION = re.compile(DURATION_PATTERN)
_LOOSE = re.compile(r"\d+(\.\d+)?|\d+(\.\d+)?(ms|s|m|h|d|w)( ?\d+(\.\d+)?(ms|s|m|h|d|w)){0,3}")


def parse_duration(value: float | int | str, *, name: str = "duration") -> float:
    """Seconds from a number of seconds or a string such as "90s", "1h30m", "2d", "1w"."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be seconds or a string like '1h30m', not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of seconds")
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        if value > MAX_SECONDS:
            raise ValueError(f"{name} of {value:g} seconds is over a century; that is not a plan")
        return float(value)
    if isinstance(value, str):
        if not _DURATION.fullmatch(value) and _LOOSE.fullmatch(value):  # the form, but too long
            raise ValueError(
                f"{name} {value!r} is too long: a duration is at most a century (up to 9 digits "
                "of plain seconds, 11 of ms, 8 of s, 7 of m, 5 of h, 3 of d or w)"
            )
        if not _DURATION.fullmatch(value):
            raise ValueError(
                f"{name} {value!r} is not a duration; write seconds or e.g. '30s', '5m', '1h30m', "
                "'2d' (lowercase units, up to four parts)"
            )
        parts = _PART.findall(value)
        total = (
            sum(float(number) * _UNITS[unit] for number, unit in parts) if parts else float(value)
        )
        return parse_duration(total, name=name)
    raise ValueError(f"{name} must be seconds or a string like '1h30m', not {type(value).__name__}")


def resolve_when(value: float | int | str | datetime, now: float, *, name: str = "delay") -> float:
    """An absolute epoch time from a delay (seconds or duration string) or a datetime."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return now + parse_duration(value, name=name)
        return resolve_when(moment, now, name=name)
    return now + parse_duration(value, name=name)


def iso(ts: float | None) -> str | None:
    """An epoch time as an ISO 8601 string in UTC, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
