"""Tasks keep their payload and output types: mypy, run on typed_tasks_cases.py, infers them
from the run function and refuses a wrong payload or a wrong use of an output."""

import re
import shutil
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("typed_tasks_cases.py")
MARKER = re.compile(r"#\s*([ER]):\s*(.+?)\s*$")
REPORT = re.compile(r"^[^:]+:(\d+): (error|note): (.*?)(?:\s+\[[a-z-]+\])?$")


def expectations() -> dict[int, tuple[str, str]]:
    found = {}
    for number, line in enumerate(CASES.read_text().splitlines(), start=1):
        match = MARKER.search(line)
        if match:
            found[number] = (match[1], match[2])
    return found


def run_mypy(tmp_path: Path) -> list[tuple[int, str, str]]:
    # a copy, so the module is `typed_tasks_cases` and the project's own config applies
    source = shutil.copy(CASES, tmp_path / CASES.name)
    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(source),
        ]
    )
    assert not stderr, stderr
    reports = []
    for line in stdout.splitlines():
        match = REPORT.match(line)
        assert match, f"unexpected mypy output: {line}"
        reports.append((int(match[1]), match[2], match[3]))
    return reports


def test_mypy_infers_payload_and_output_types_and_refuses_wrong_ones(tmp_path):
    expected = expectations()
    assert sum(kind == "E" for kind, _ in expected.values()) >= 10
    assert sum(kind == "R" for kind, _ in expected.values()) >= 15
    reports = run_mypy(tmp_path)

    seen = {}
    for line, severity, message in reports:
        kind, text = expected.get(line, (None, None))
        if severity == "note" and message.startswith("Revealed type is "):
            revealed = message.removeprefix("Revealed type is ").strip('"')
            assert kind == "R", f"line {line}: reveal_type without a marker: {revealed}"
            assert revealed == text, f"line {line}: revealed {revealed}, expected {text}"
        elif severity == "error":
            assert kind == "E", f"line {line}: unexpected error: {message}"
            assert text in message, f"line {line}: {message!r} does not say {text!r}"
        else:
            continue  # notes that explain an error
        seen[line] = kind
    missing = sorted(line for line in expected if line not in seen)
    assert not missing, f"no mypy report on lines {missing} ({[expected[n] for n in missing]})"


def test_the_package_says_it_is_typed():
    # PEP 561: without py.typed in the installed package, mypy ignores every annotation above
    assert (ROOT / "conveyor" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["conveyor"]
