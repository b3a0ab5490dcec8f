"""An executor's environment variables: the values of the environment's variables
(engine/envvars.py) that come with each attempt, set in the process's environment before the
attempt starts, and redacted from what the attempt reports.

Executors are started before any attempt and serve many: the values an attempt brings replace
those of the attempts before it (a name no longer given is removed, or set back to what the
process started with), so a change reaches the attempts that start after it, without a
redeploy or a restart. Attempts running at once in one executor share its environment, which
is the environment's anyway: a worker serves one environment.

Redaction: every value of at least `MIN_REDACTED` characters is replaced by `[redacted]` in the
log lines an attempt writes (`logger`, `print`, `logging`), their attributes and the error it
fails with, before they leave the executor. Shorter values are left alone: redacting "1" or
"on" would mangle every line. A run's output and metadata are the task's own data and are not
redacted.
"""

from __future__ import annotations

import os
import re
from typing import Any

MIN_REDACTED = 4
REDACTED = "[redacted]"


class Variables:
    """The variables set in this process for the attempts, and the redaction of their values."""

    def __init__(self) -> None:
        self._given: dict[str, str] = {}
        self._before: dict[str, str | None] = {}  # what the process had, for the names we set
        self._pattern: re.Pattern[str] | None = None

    def apply(self, values: dict[str, str]) -> None:
        """Make the process's environment hold `values` (those of the attempt about to start)."""
        if values == self._given:
            return
        for name in self._given.keys() - values.keys():
            before = self._before.pop(name, None)
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
        for name, value in values.items():
            if name not in self._before and name not in self._given:
                self._before[name] = os.environ.get(name)
            os.environ[name] = value
        self._given = dict(values)
        secrets = sorted(
            {v for v in values.values() if len(v) >= MIN_REDACTED}, key=len, reverse=True
        )
        self._pattern = re.compile("|".join(map(re.escape, secrets))) if secrets else None

    def redact(self, text: str) -> str:
        """`text` with every value replaced by [redacted]."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact_value(self, value: Any) -> Any:
        """A JSON-like value (a log line's attributes, an error) with every string redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value
