"""An executor's variables (conveyor/worker/envvars.py) and the .env reader (conveyor/dotenv.py):
values set for the attempts and taken back when no longer given, redaction of values of four
characters or more, and the .env forms."""

from __future__ import annotations

import os

import pytest

from conveyor.dotenv import parse_dotenv
from conveyor.errors import InvalidRequest
from conveyor.worker.envvars import Variables


def test_values_replace_those_of_earlier_attempts_and_the_process_own_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CV_TEST_HOME", "the process's")
    monkeypatch.delenv("CV_TEST_TOKEN", raising=False)
    variables = Variables()
    variables.apply({"CV_TEST_HOME": "given", "CV_TEST_TOKEN": "secret-1"})
    assert os.environ["CV_TEST_HOME"] == "given" and os.environ["CV_TEST_TOKEN"] == "secret-1"
    variables.apply({"CV_TEST_TOKEN": "secret-2"})
    assert os.environ["CV_TEST_HOME"] == "the process's"
    assert os.environ["CV_TEST_TOKEN"] == "secret-2"
    variables.apply({})
    assert "CV_TEST_TOKEN" not in os.environ


def test_values_of_four_characters_or_more_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CV_TEST_A", "CV_TEST_B", "CV_TEST_C"):
        monkeypatch.delenv(name, raising=False)
    variables = Variables()
    assert variables.redact("nothing to hide") == "nothing to hide"
    variables.apply({"CV_TEST_A": "abcd", "CV_TEST_B": "abcdef.*", "CV_TEST_C": "on"})
    assert variables.redact("x abcdef.* y abcd on") == "x [redacted] y [redacted] on"
    assert variables.redact_value({"k": ["abcd", 1, {"abcd": "n abcd"}]}) == {
        "k": ["[redacted]", 1, {"[redacted]": "n [redacted]"}]
    }
    variables.apply({})


def test_dotenv_forms() -> None:
    text = (
        "# comment\n\nexport A=1\nB = two words # note\nC='a # b'\n"
        'D="x\\ny \\"q\\""\nE="multi\nline"\nF=\nG=$A\n'
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "two words",
        "C": "a # b",
        "D": 'x\ny "q"',
        "E": "multi\nline",
        "F": "",
        "G": "$A",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("A=1\nnot a line secret\n", "line 2: expected NAME=value"),
        ('A="never closed\n', 'line 1: the " is never closed'),
        ("A='x' tail\n", "line 1: text after the closing '"),
    ],
)
def test_dotenv_errors_name_the_line_and_never_the_value(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says) as raised:
        parse_dotenv(text)
    assert "secret" not in str(raised.value) and "never closed" not in str(raised.value)[:4]
