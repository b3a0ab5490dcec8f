"""Identifiers: a kind prefix and a time-ordered random part, so ids sort by creation time.

`run_01JD3...`: 48 bits of milliseconds and 80 random bits in Crockford base32 (26 characters),
like a ULID. Sorting run ids sorts runs by creation time, which cursor pagination relies on.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str, at: float | None = None) -> str:
    """A fresh id such as `run_01jd3x...`; ids made later sort after ids made earlier."""
    ms = int((time.time() if at is None else at) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(ms, 10)}{_encode(rand, 16)}"
