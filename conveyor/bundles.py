"""What a bundle is, for the three that handle one: the deploying machine builds it
(conveyor/build/bundle.py), the server checks it at upload (conveyor/engine/deployments.py),
and a worker checks it again and unpacks it (conveyor/worker/versions.py).

A bundle is a tar.gz of plain files inside the project, at most MAX_BUNDLE_BYTES compressed,
MAX_MEMBERS members and MAX_UNPACKED_BYTES unpacked, with its dependency lock in LOCK_FILE.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from conveyor.errors import ConfigError

LOCK_FILE = "requirements.lock"
# compressed; the server refuses larger (conveyor/engine/deployments.py)
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # what a bundle may unpack to
MAX_MEMBERS = 20_000


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
                    return (
                        f"the bundle's member {name!r} has a path outside the project (absolute, "
                        "or with '..')"
                    )
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
