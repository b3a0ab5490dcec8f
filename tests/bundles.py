"""Deploy bundles for tests: a small valid one, and crafted ones a server must refuse."""

from __future__ import annotations

import gzip
import io
import tarfile


def bundle_of(
    files: dict[str, bytes],
    *,
    links: dict[str, str] | None = None,
    hard_links: dict[str, str] | None = None,
) -> bytes:
    """A tar.gz with `files` (name -> content) and symbolic or hard `links` (name -> target)."""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for kind, found in ((tarfile.SYMTYPE, links or {}), (tarfile.LNKTYPE, hard_links or {})):
            for name, target in found.items():
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = target
                tar.addfile(info)
    return raw.getvalue()


def small_bundle(note: str = "") -> bytes:
    """A valid bundle; a different `note` gives different bytes."""
    return bundle_of(
        {
            "pyproject.toml": b'[tool.conveyor]\nproject = "t"\n',
            "tasks/__init__.py": f"# {note}\n".encode(),
            "requirements.lock": b"",
        }
    )
