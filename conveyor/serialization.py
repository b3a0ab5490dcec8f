"""Payloads and outputs as JSON: pydantic models are dumped, datetimes become ISO strings,
anything else that JSON cannot hold is refused with the path to the offending value.

Every value a run carries (payload, output, metadata, a step's result, a token's data) nests at
most `MAX_DEPTH` levels and holds only Unicode text: deeper values break serializers and
browsers further on, and a lone surrogate cannot be stored as UTF-8."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, time
from enum import Enum
from typing import Any

from pydantic import BaseModel

from conveyor.errors import PayloadError

MAX_DEPTH = 64


def _too_deep(path: str) -> str:
    return f"{path} is nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}"


def _not_text(path: str) -> str:
    return f"{path} holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"


def _is_text(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def as_text(text: str) -> str:
    """`text` as UTF-8 can hold it: a lone surrogate becomes "?"."""
    return text if _is_text(text) else text.encode("utf-8", "replace").decode("utf-8")


def json_problem(value: Any, path: str = "payload", *, limit: int = MAX_DEPTH) -> str | None:
    """What makes a parsed JSON value unfit to store, or None: nesting deeper than `limit`, or a
    string or key that is not Unicode text. Walks without recursion, so any depth is safe."""
    stack: list[tuple[Any, int, str]] = [(value, 0, path)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                return _not_text(where)
        elif isinstance(item, dict | list):
            if depth >= limit:
                return _too_deep(path) if limit == MAX_DEPTH else _too_deep(where)
            if isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str) and not _is_text(key):
                        return _not_text(f"{where} (a key)")
                    stack.append((inner, depth + 1, f"{where}.{key}"))
            else:
                stack.extend((inner, depth + 1, f"{where}[{i}]") for i, inner in enumerate(item))
    return None


def to_json_value(value: Any, path: str = "payload", _depth: int = 0) -> Any:
    """`value` as plain JSON types, or PayloadError naming where it is not JSON."""
    if isinstance(value, str):
        if not _is_text(value):
            raise PayloadError(_not_text(path))
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, dict | list | tuple) and _depth >= MAX_DEPTH:
        raise PayloadError(_too_deep(path.split(".")[0].split("[")[0]))
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                )
            if not _is_text(key):
                raise PayloadError(_not_text(f"{path} (a key)"))
            out[key] = to_json_value(item, f"{path}.{key}", _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [to_json_value(item, f"{path}[{i}]", _depth + 1) for i, item in enumerate(value)]
    hint = getattr(type(value), "__conveyor_json_hint__", None)
    if hint:
        raise PayloadError(
            f"{path} is a {type(value).__name__}, which is not a value to store: {hint}"
        )
    if isinstance(value, BaseModel):
        return to_json_value(value.model_dump(mode="json"), path, _depth)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_json_value(value.value, path, _depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value(dataclasses.asdict(value), path, _depth)
    hint = "; use a list" if isinstance(value, set | frozenset) else ""
    raise PayloadError(f"{path} is a {type(value).__name__}, which is not JSON{hint}")


def dumps(value: Any, path: str = "payload") -> str:
    """JSON text of `value` (see `to_json_value`)."""
    return json.dumps(to_json_value(value, path), separators=(",", ":"), ensure_ascii=False)
