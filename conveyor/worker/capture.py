"""Capturing `print` and standard `logging` per attempt inside an executor.

sys.stdout/sys.stderr are replaced by streams that send each complete line to the attempt the
writing code runs in (found through the attempt's context variable, which sync tasks' threads
inherit); text written outside any attempt goes to the real stream. A root logging handler does
the same for log records.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any, TextIO

from conveyor.sdk.context import AttemptScope, current_scope

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class ScopedStream(io.TextIOBase):
    """A text stream that routes lines to the current attempt's logs."""

    def __init__(self, real: TextIO, level: str) -> None:
        self._real = real
        self._level = level
        self._partial: dict[int, str] = {}
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        scope = current_scope()
        if scope is None:
            return self._real.write(text)
        key = id(scope)
        with self._lock:
            buffered = self._partial.pop(key, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._partial[key] = rest
        for line in lines:
            scope.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def flush_scope(self, scope: AttemptScope) -> None:
        with self._lock:
            rest = self._partial.pop(id(scope), "")
        if rest:
            scope.log(self._level, rest)

    def fileno(self) -> int:
        return self._real.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")


class ScopedLogHandler(logging.Handler):
    """Sends log records written inside an attempt to its logs."""

    def emit(self, record: logging.LogRecord) -> None:
        scope = current_scope()
        if scope is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            attributes: dict[str, Any] = {"logger": record.name}
            scope.log(_LEVELS.get(record.levelno, "info"), message, attributes)
        except Exception:
            self.handleError(record)


class _OutsideAttempts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return current_scope() is None


def install_capture() -> None:
    """Route print and logging inside attempts to their logs (call once per executor)."""
    sys.stdout = ScopedStream(sys.__stdout__, "info")  # type: ignore[arg-type]
    sys.stderr = ScopedStream(sys.__stderr__, "error")  # type: ignore[arg-type]
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.__stderr__)
    console.addFilter(_OutsideAttempts())
    root.addHandler(console)
    root.addHandler(ScopedLogHandler())


def flush_partial_lines(scope: AttemptScope) -> None:
    """Log what an attempt printed without a final newline."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, ScopedStream):
            stream.flush_scope(scope)
