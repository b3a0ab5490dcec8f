"""The interface of object storage: bytes under keys like `tmp/job_1/chunk-0001.mp3`."""

from __future__ import annotations

import re
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StorageError(Exception):
    """A storage call failed, or a key is not allowed."""


def check_key(key: str) -> str:
    """The key if it is safe on every backend (no `..`, no leading `/`, plain characters)."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise StorageError(f"bad storage key {key!r}")
    return key


class ObjectStorage(Protocol):
    """Blocking calls: from async code, run them with `asyncio.to_thread`."""

    def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; StorageError if there is none."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Delete the objects; keys that do not exist are fine."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`, sorted."""
        ...

    def url(self, key: str) -> str:
        """Where a client downloads the object."""
        ...
