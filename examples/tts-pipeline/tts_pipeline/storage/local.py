"""Object storage in a local folder: a key is a path under the folder. The backend serves the
folder at /media, so `url()` points there."""

from __future__ import annotations

import os
from pathlib import Path

from tts_pipeline.storage.base import StorageError, check_key


class LocalStorage:
    name = "local"

    def __init__(
        self, root: str | Path, *, public_base_url: str = "http://127.0.0.1:8000/media"
    ) -> None:
        self.root = Path(root)
        self.public_base_url = public_base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file, and a retried write is harmless

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no object {key!r} in {self.root}") from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(
            k for k in keys if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith(".")
        )

    def url(self, key: str) -> str:
        return f"{self.public_base_url}/{check_key(key)}"
