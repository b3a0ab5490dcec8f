"""How to install an optional part of Conveyor (an "extra"), said so that it works where this
copy came from: from PyPI, `pip install 'conveyor[mcp]'`; from a checkout of the repository
(an editable install), `pip install -e '/path/to/checkout[mcp]'`, since PyPI's package is not
the code being run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def _checkout() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "conveyor"' in pyproject.read_text(errors="replace"):
        return root
    return None


def install_hint(extra: str) -> str:
    """The command that installs `extra` into the Python running now."""
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    checkout = _checkout()
    if checkout is not None:
        return f"{pip} -e {shlex.quote(f'{checkout}[{extra}]')}"
    return f"{pip} {shlex.quote(f'conveyor[{extra}]')}"
