"""Metadata ops applied to a run's metadata: pure functions, shared by the engine (which applies
the ops a run's code sends, engine/durable.py) and the sdk (conveyor/sdk/metadata.py applies
them the same way to the run's own copy).

    set(key, value)        the value at key
    increment(key, by)     a number at key (0 if absent) plus `by`; decrement subtracts
    append(key, value)     a list at key (made if absent) gets value at its end
    remove(key, value)     every item equal to value leaves the list at key
    delete(key)            key goes

A key is a top-level key of the metadata object. An op that does not fit what is there (an
increment of a text, an append to a number) is refused naming the key.
"""

from __future__ import annotations

import json
import math
from typing import Any

from conveyor.errors import PayloadError

MAX_METADATA_BYTES = 256 * 1024  # of JSON, per run
MAX_TAGS = 10


def apply_op(metadata: dict[str, Any], op: str, key: str, value: Any) -> None:
    """Apply one op to `metadata` in place; PayloadError naming the key if it does not fit."""
    if op == "set":
        metadata[key] = value
    elif op in ("increment", "decrement"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise PayloadError(f"metadata.{op}({key!r}, ...): the amount must be a number")
        current = metadata.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise PayloadError(f"metadata.{op}({key!r}, ...): the value at {key!r} is not a number")
        metadata[key] = current + value if op == "increment" else current - value
    elif op == "append":
        current = metadata.setdefault(key, [])
        if not isinstance(current, list):
            raise PayloadError(f"metadata.append({key!r}, ...): the value at {key!r} is not a list")
        current.append(value)
    elif op == "remove":
        current = metadata.get(key)
        if isinstance(current, list):
            metadata[key] = [item for item in current if item != value]
    elif op == "delete":
        metadata.pop(key, None)
    else:  # pragma: no cover - the protocol's types allow no other op
        raise PayloadError(f"unknown metadata op {op!r}")


def metadata_json(metadata: dict[str, Any], whose: str) -> str:
    """The metadata as JSON text, or PayloadError when it is over MAX_METADATA_BYTES."""
    try:
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # NaN, infinity, or no JSON type at all
        raise PayloadError(f"the metadata of {whose} is not JSON: {exc}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise PayloadError(
            f"the metadata of {whose} would be {len(text) // 1024} KB of JSON; the limit is "
            f"{MAX_METADATA_BYTES // 1024} KB (keep large data in a store and its key here)"
        )
    return text


def add_tag(tags: list[str], tag: Any) -> None:
    """Add a tag to a run's tags in place (once); PayloadError past MAX_TAGS or for a bad tag."""
    if not isinstance(tag, str) or not 1 <= len(tag) <= 128:
        raise PayloadError(f"a tag is text of 1 to 128 characters, got {tag!r}")
    if tag in tags:
        return
    if len(tags) >= MAX_TAGS:
        raise PayloadError(f"a run has at most {MAX_TAGS} tags; it has {', '.join(tags)}")
    tags.append(tag)
