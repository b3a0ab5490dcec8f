"""`pytest -m "not e2e"` is the fast loop: it leaves out every test that starts real conveyor
processes, including a test file added to tests/e2e without a marker of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_not_e2e_leaves_out_every_end_to_end_test() -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not e2e"),
            *("tests/e2e", "tests/campaign/test_campaign.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 5, result.stdout + result.stderr  # 5: no test selected
    assert "deselected" in result.stdout, result.stdout  # they were found, then left out
