"""An install hint for an optional part works where this copy of Conveyor came from."""

from __future__ import annotations

import sys
from pathlib import Path

import conveyor
from conveyor import extras


def test_from_a_checkout_the_hint_installs_the_checkout_itself() -> None:
    checkout = Path(conveyor.__file__).resolve().parents[1]
    assert (checkout / "pyproject.toml").is_file()  # these tests run from the repository
    hint = extras.install_hint("mcp")
    assert hint.startswith(sys.executable) or hint.startswith(f"'{sys.executable}'")
    assert f"-e {checkout}[mcp]" in hint.replace("'", "")


def test_from_a_package_the_hint_names_the_extra_on_pypi(monkeypatch) -> None:
    monkeypatch.setattr(extras, "_checkout", lambda: None)
    assert extras.install_hint("postgres").endswith("-m pip install 'conveyor[postgres]'")
