"""Deployed versions on a worker: fetch a version's bundle, unpack it into a folder of its own,
and give it a Python environment with its dependency lock installed.

    <cache>/<environment id>/<version>/   the version's code (config, dirs, requirements.lock)
    <cache>/envs/<lock hash>-py<X.Y>/      a venv per dependency lock: versions with the same
                                           lock share it

A version's venv sees its own packages first, then the worker's environment (where Conveyor
itself is installed, through a .pth file), so a lock that pins nothing installs nothing and a
version is ready in a moment. Installs use pip against whatever index pip is configured with.
Folders are made under a temporary name and renamed when complete, so a worker killed halfway
leaves nothing half-made behind; a file lock keeps two workers on one machine from making the
same venv twice. Each version is unpacked once and never changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from conveyor.bundles import extract_bundle, read_lock
from conveyor.errors import ConveyorError
from conveyor.models import DeploymentBundle

INSTALL_TIMEOUT = 900.0
Fetch = Callable[[str], Awaitable[tuple[DeploymentBundle, bytes]]]


class VersionUnavailable(ConveyorError):
    """A deployed version could not be made ready on this worker."""

    code = "version_unavailable"


@dataclass(frozen=True, slots=True)
class PreparedVersion:
    version: str
    root: Path  # the unpacked code: executors run with it as their project folder
    python: str  # the interpreter of its environment


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conveyor" / "worker"


class VersionCache:
    """Versions made ready on this machine, each once (concurrent asks share the work)."""

    def __init__(self, folder: Path, env_id: str, fetch: Fetch) -> None:
        self.folder = folder
        self.env_id = env_id
        self.fetch = fetch
        self._ready: dict[str, asyncio.Future[PreparedVersion]] = {}

    def prepare(self, version: str) -> asyncio.Future[PreparedVersion]:
        """The version ready to run; VersionUnavailable (on the future) saying why not. A failure
        is not remembered: the next ask tries again."""
        future = self._ready.get(version)
        if future is None or (future.done() and future.exception() is not None):
            future = self._ready[version] = asyncio.ensure_future(self._prepare(version))
        return future

    def is_ready(self, version: str) -> bool:
        future = self._ready.get(version)
        return future is not None and future.done() and future.exception() is None

    async def _prepare(self, version: str) -> PreparedVersion:
        root = self.folder / _safe(self.env_id) / _safe(version)
        try:
            if not (root / ".complete").is_file():
                _, data = await self.fetch(version)
                await asyncio.to_thread(_unpack, data, root)
            lock = read_lock(root)
            python = await asyncio.to_thread(environment_for, lock, self.folder / "envs")
        except ConveyorError as exc:
            raise VersionUnavailable(f"version {version}: {exc.message}") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise VersionUnavailable(
                f"version {version} could not be made ready on this worker: {exc}"
            ) from exc
        return PreparedVersion(version, root, python)


def _safe(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or ".." in name:
        raise VersionUnavailable(f"{name!r} cannot name a folder")
    return name


def _unpack(data: bytes, root: Path) -> None:
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    extract_bundle(data, tmp)
    (tmp / ".complete").write_text("")
    try:
        tmp.rename(root)
    except OSError:  # another worker of this machine unpacked it first: theirs is the same
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / ".complete").is_file():
            raise


def environment_for(lock: str, folder: Path) -> str:
    """The python of a venv with `lock` installed over the worker's own packages, made once per
    lock and Python version."""
    tag = (
        hashlib.sha256(lock.encode()).hexdigest()[:16]
        + f"-py{sys.version_info[0]}.{sys.version_info[1]}"
    )
    home = folder / tag
    python = home / "bin" / "python"
    if (home / ".complete").is_file():
        return str(python)
    folder.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder / f".{tag}.lock"):
        if (home / ".complete").is_file():
            return str(python)
        tmp = folder / f".{tag}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # symlinks: the venv's python keeps the worker's base interpreter,
        # its paths are rewritten on rename
        venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp)
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(tmp), "platbase": str(tmp)}))
        _layer_over_worker(purelib)
        shutil.rmtree(home, ignore_errors=True)
        tmp.rename(home)
        _fix_venv_paths(home, tmp)
        if lock.strip():
            _install(lock, home)
        (home / ".complete").write_text(lock)
    return str(python)


def _layer_over_worker(purelib: Path) -> None:
    """Let the venv import what the worker's environment has (Conveyor first of all), after
    its own packages: a .pth line that adds the worker's site folders (and their .pth files)."""
    folders = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    lines = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in folders)
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "zz-conveyor-worker.pth").write_text(lines)


def _fix_venv_paths(home: Path, made_at: Path) -> None:
    """A venv names its folder in pyvenv.cfg and its scripts; it was made under a temporary name."""
    cfg = home / "pyvenv.cfg"
    if cfg.is_file():
        cfg.write_text(cfg.read_text().replace(str(made_at), str(home)))


def _install(lock: str, home: Path) -> None:
    requirements = home / "requirements.lock"
    requirements.write_text(lock)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(home / "bin" / "python"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(home, ignore_errors=True)
        raise VersionUnavailable(
            f"installing its dependencies took longer than {INSTALL_TIMEOUT:g}s"
        ) from exc
    if proc.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        raise VersionUnavailable(
            f"installing its dependencies failed: {lines[-1] if lines else proc.returncode}"
        )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
