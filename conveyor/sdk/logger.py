"""`logger`: structured logs attached to the run they are written in.

    logger.info("calling", model="tts-1")

Inside an attempt each line is stored with the run (level, time, message, attributes) and shown
in the dashboard; outside a run it goes to the standard `logging` logger "conveyor.task".
"""

from __future__ import annotations

import logging
from typing import Any

from conveyor.sdk.context import current_scope

_fallback = logging.getLogger("conveyor.task")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "log": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class Logger:
    """Log lines with attributes; see the module docstring."""

    def _emit(self, level: str, message: str, attributes: dict[str, Any]) -> None:
        scope = current_scope()
        if scope is not None:
            scope.log(level, str(message), attributes or None)
        else:
            _fallback.log(_LEVELS[level], "%s %s", message, attributes if attributes else "")

    def debug(self, message: str, /, **attributes: Any) -> None:
        self._emit("debug", message, attributes)

    def info(self, message: str, /, **attributes: Any) -> None:
        self._emit("info", message, attributes)

    def log(self, message: str, /, **attributes: Any) -> None:
        self._emit("log", message, attributes)

    def warn(self, message: str, /, **attributes: Any) -> None:
        self._emit("warn", message, attributes)

    warning = warn

    def error(self, message: str, /, **attributes: Any) -> None:
        self._emit("error", message, attributes)


logger = Logger()
