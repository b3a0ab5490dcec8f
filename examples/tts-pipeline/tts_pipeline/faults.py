"""Test-only fault injection, off unless TTS_TEST_FAULTS=1 is set for the task executors.

When it is on, a chunk whose text holds the marker `[[fail-attempts:N]]` fails its first N
attempts (`[[fail-attempts:always]]`: every attempt), and the marker is removed before the text
is spoken. The example's tests use it to prove that a chunk is retried and that a chunk that never
succeeds fails the job. Without TTS_TEST_FAULTS the marker is ordinary text.
"""

from __future__ import annotations

import os
import re

MARKER = re.compile(r"\[\[fail-attempts:(\d+|always)\]\]")


class InjectedFault(Exception):
    """A failure the test asked for with a fail-attempts marker."""


def apply(text: str, attempt: int, env: os._Environ[str] | dict[str, str] | None = None) -> str:
    """The text to speak; raises InjectedFault when a marker asks this attempt to fail."""
    env = os.environ if env is None else env
    if env.get("TTS_TEST_FAULTS") != "1":
        return text
    for match in MARKER.finditer(text):
        limit = match.group(1)
        if limit == "always" or attempt <= int(limit):
            raise InjectedFault(f"injected failure on attempt {attempt} ({match.group(0)})")
    return " ".join(MARKER.sub(" ", text).split())
