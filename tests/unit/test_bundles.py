"""The deploy bundle: what it holds, that unchanged code gives the same bytes, that it unpacks
only inside its folder, and the lock of the project's dependencies."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from conveyor.build.bundle import build_bundle
from conveyor.build.lock import dependency_lock, normalize
from conveyor.bundles import LOCK_FILE, extract_bundle, read_lock
from conveyor.config import load_config
from conveyor.errors import ConfigError


def project(tmp_path: Path, dependencies: str = "[]", external: str = "[]") -> Path:
    root = tmp_path / "app"
    (root / "tasks" / "sub").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "app"\nversion = "1"\ndependencies = {dependencies}\n\n'
        '[tool.conveyor]\nproject = "proj_app"\ndirs = ["tasks"]\n'
        f"[tool.conveyor.build]\nexternal = {external}\n"
    )
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "a.py").write_text("X = 1\n")
    (root / "tasks" / "sub" / "b.py").write_text("Y = 2\n")
    (root / "tasks" / "__pycache__").mkdir()
    (root / "tasks" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (root / "tasks" / ".secret").write_text("not shipped")
    (root / "notes.txt").write_text("outside the dirs")
    return root


def test_a_bundle_holds_the_config_the_dirs_and_the_lock_and_nothing_else(tmp_path):
    bundle = build_bundle(load_config(project(tmp_path)))
    with tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:gz") as tar:
        names = tar.getnames()
    assert names == [
        "pyproject.toml",
        "tasks/__init__.py",
        "tasks/a.py",
        "tasks/sub/b.py",
        LOCK_FILE,
    ]
    out = tmp_path / "out"
    extract_bundle(bundle.data, out)
    assert (out / "tasks" / "sub" / "b.py").read_text() == "Y = 2\n" and read_lock(out) == ""


def test_unchanged_code_gives_the_same_bundle(tmp_path):
    root = project(tmp_path)
    first = build_bundle(load_config(root))
    (root / "tasks" / "a.py").touch()  # a newer mtime alone changes nothing
    assert build_bundle(load_config(root)).sha256 == first.sha256
    (root / "tasks" / "a.py").write_text("X = 2\n")
    assert build_bundle(load_config(root)).sha256 != first.sha256


def test_a_bundle_with_an_entry_outside_its_folder_is_refused(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ConfigError, match="escape"):
        extract_bundle(raw.getvalue(), tmp_path / "out")
    assert not (tmp_path / "escape.py").exists()


def test_the_lock_pins_declared_dependencies_and_theirs_as_installed_here(tmp_path):
    import httpx
    import pydantic

    lock = dependency_lock(
        load_config(project(tmp_path, '["httpx>=0.20", "conveyor", "Not_Installed_Pkg>=1"]'))
    )
    lines = lock.splitlines()
    assert f"httpx=={httpx.__version__}" in lines
    assert any(line.startswith("httpcore==") for line in lines)  # what httpx requires, pinned too
    assert "not-installed-pkg" not in lock and "Not_Installed_Pkg>=1" in lines  # kept as declared
    assert not any(line.startswith("conveyor") for line in lines)  # the worker brings its own
    assert f"pydantic=={pydantic.VERSION}" not in lines  # nothing declared needs it
    assert lines == sorted(lines, key=lambda line: normalize(line.split("=")[0].split(">")[0]))


def test_build_external_packages_are_left_to_the_workers(tmp_path):
    lock = dependency_lock(load_config(project(tmp_path, '["httpx"]', '["HTTPX"]')))
    assert "httpx" not in lock


def test_a_project_without_dependencies_has_an_empty_lock(tmp_path):
    assert dependency_lock(load_config(project(tmp_path))) == ""
