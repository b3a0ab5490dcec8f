"""Payloads and outputs as JSON: pydantic models are dumped, datetimes become ISO strings,
anything else that JSON cannot hold is refused with the path to the offending value."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, time
from enum import Enum
from typing import Any

from pydantic import BaseModel

from conveyor.errors import PayloadError


def to_json_value(value: Any, path: str = "payload") -> Any:
    """`value` as plain JSON types, or PayloadError naming where it is not JSON."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(f"{path} has a key {key!r} of type {type(key).__name__}; JSON keys are strings")
            out[key] = to_json_value(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [to_json_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
    hint = getattr(type(value), "__conveyor_json_hint__", None)
    if hint:
        raise PayloadError(f"{path} is a {type(value).__name__}, which is not a value to store: {hint}")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_json_value(value.value, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value(dataclasses.asdict(value), path)
    hint = "; use a list" if isinstance(value, set | frozenset) else ""
    raise PayloadError(f"{path} is a {type(value).__name__}, which is not JSON{hint}")


def dumps(value: Any, path: str = "payload") -> str:
    """JSON text of `value` (see `to_json_value`)."""
    return json.dumps(to_json_value(value, path), separators=(",", ":"), ensure_ascii=False)
