"""The bundle of a deploy: a tar.gz of the project's task code, built on the deploying machine.

    <config file>          pyproject.toml or conveyor.toml, as the project has it
    <dirs>/**              every file under the config's `dirs` (no caches, no dot-files)
    requirements.lock      the pinned dependencies (conveyor/build/lock.py)

The same files give the same bytes (sorted entries, fixed times and owners), so two deploys of
unchanged code have the same sha256. A worker unpacks it into a folder of its own per version
(conveyor/worker/versions.py). Nothing here talks to a server.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from conveyor.build.lock import dependency_lock
from conveyor.config import Config
from conveyor.errors import ConfigError

LOCK_FILE = "requirements.lock"
MAX_BUNDLE_BYTES = (
    32 * 1024 * 1024
)  # compressed; the server refuses larger (conveyor/engine/deployments.py)
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # what a bundle may unpack to
MAX_MEMBERS = 20_000
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
                f"{config.source}: dirs names {folder.relative_to(config.root)!s}, which is not a folder"
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


def bundle_problem(data: bytes) -> str | None:
    """What makes `data` no bundle a worker may unpack, naming the member, or None: not a tar.gz,
    a member that is not a plain file or folder (a link, a device), a path that is absolute or
    climbs out (`..`), or more than MAX_MEMBERS members or MAX_UNPACKED_BYTES unpacked. The
    server checks this at upload, and the worker again before it unpacks."""
    unpacked = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                name = member.name
                parts = PurePosixPath(name).parts
                if (
                    name.startswith(("/", "\\"))
                    or (len(name) > 1 and name[1] == ":")
                    or ".." in parts
                    or "\\" in name
                ):
                    return f"the bundle's member {name!r} has a path outside the project (absolute, or with '..')"
                if not (member.isfile() or member.isdir()):
                    kind = "a link" if member.issym() or member.islnk() else "not a plain file"
                    return (
                        f"the bundle's member {name!r} is {kind}; a bundle holds plain files only"
                    )
                unpacked += member.size
                if count > MAX_MEMBERS:
                    return f"the bundle holds more than {MAX_MEMBERS} members"
                if unpacked > MAX_UNPACKED_BYTES:
                    return (
                        f"the bundle unpacks to more than {MAX_UNPACKED_BYTES // 1024**2} MB "
                        f"(at member {name!r}); keep data files out of the task dirs"
                    )
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return f"the bundle is not a tar.gz: {exc}"
    return None


def extract_bundle(data: bytes, folder: Path) -> None:
    """Unpack a bundle into `folder`; ConfigError when `bundle_problem` finds one."""
    problem = bundle_problem(data)
    if problem:
        raise ConfigError(problem)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")


def read_lock(folder: Path) -> str:
    """The dependency lock of an unpacked bundle ("" when it pins nothing)."""
    path = folder / LOCK_FILE
    return path.read_text() if path.is_file() else ""
