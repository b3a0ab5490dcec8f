"""The bundle of a deploy: a tar.gz of the project's task code, built on the deploying machine.

    <config file>          pyproject.toml or conveyor.toml, as the project has it
    <dirs>/**              every file under the config's `dirs` (no caches, no dot-files)
    requirements.lock      the pinned dependencies (conveyor/build/lock.py)

The same files give the same bytes (sorted entries, fixed times and owners), so two deploys of
unchanged code have the same sha256. What a bundle may hold, and how a worker unpacks it into a
folder of its own per version, is conveyor/bundles.py. Nothing here talks to a server.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from conveyor.build.lock import dependency_lock
from conveyor.bundles import LOCK_FILE, MAX_BUNDLE_BYTES
from conveyor.config import Config
from conveyor.errors import ConfigError

_SKIPPED = ("__pycache__", ".")


@dataclass(frozen=True, slots=True)
class Bundle:
    data: bytes
    files: list[str]
    lock: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def lock_sha256(self) -> str:
        return hashlib.sha256(self.lock.encode()).hexdigest()


def bundle_files(config: Config) -> list[Path]:
    """The files a bundle holds, relative to the project root, sorted."""
    if config.source is None:
        raise ConfigError("the project has no config file to bundle")
    files = {config.source.relative_to(config.root)}
    for folder in config.task_dirs():
        if not folder.is_dir():
            raise ConfigError(
                f"{config.source}: dirs names {folder.relative_to(config.root)!s}, which is not a "
                "folder"
            )
        for path in folder.rglob("*"):
            rel = path.relative_to(config.root)
            if path.is_file() and not any(
                part.startswith(_SKIPPED) or part.endswith(".pyc") for part in rel.parts
            ):
                files.add(rel)
    return sorted(files)


def build_bundle(config: Config) -> Bundle:
    """The project's bundle; ConfigError when it is over the server's size limit."""
    lock = dependency_lock(config)
    files = bundle_files(config)
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for rel in files:
            data = (config.root / rel).read_bytes()
            tar.addfile(_entry(rel.as_posix(), len(data)), io.BytesIO(data))
        lock_bytes = lock.encode()
        tar.addfile(_entry(LOCK_FILE, len(lock_bytes)), io.BytesIO(lock_bytes))
    data = raw.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        biggest = max(files, key=lambda rel: (config.root / rel).stat().st_size)
        raise ConfigError(
            f"the bundle is {len(data) / 1024**2:.1f} MB compressed; the limit is "
            f"{MAX_BUNDLE_BYTES // 1024**2} MB: keep data files out of the task dirs "
            f"(the largest is {biggest})"
        )
    return Bundle(data, [rel.as_posix() for rel in files], lock)


def _entry(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info
