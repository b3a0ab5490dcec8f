"""Fixtures of the changelog example's tests: the example's code on sys.path, small git
repositories made on the spot, and a real `conveyor dev` on a copy of the example."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from changelog_testing import EXAMPLE, GIT_ENV, commit, git

from conveyor.testing.platform import DevPlatform

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a release tag v1.0 and three commits after it."""
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, "README.md", "shop\n", "Initial commit")
    commit(root, "cart.py", "def total(): ...\n", "Add the cart")
    git(root, "tag", "v1.0")
    commit(
        root,
        "cart.py",
        "def total(): return 0\n",
        "Fix the cart total for empty carts\n\nIt was None.",
    )
    commit(root, "pay.py", "def pay(): ...\n", "Add card payments")
    commit(root, "docs/pay.md", "# Pay\n", "Document payments")
    return root


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPlatform]:
    root = tmp_path_factory.mktemp("changelog") / "example"
    root.mkdir()
    for name in ("tasks", "changelog_agent"):
        shutil.copytree(EXAMPLE / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLE / "pyproject.toml", root / "pyproject.toml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **GIT_ENV}
    for name in ("ANTHROPIC_API_KEY", "CONVEYOR_API_URL", "CONVEYOR_SECRET_KEY"):
        env.pop(name, None)  # no model call from the tests, whatever the machine has
    server = DevPlatform(root, env=env)
    server.start()
    yield server
    server.stop()
