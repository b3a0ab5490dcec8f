"""`conveyor dev`'s `.env`: the variables of the project folder's `.env` file, read again when
it changes, given to every attempt of the in-process worker over those of the dev
environment (a name in both takes the file's value: the file is what a developer edits)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conveyor.dotenv import parse_dotenv
from conveyor.errors import ConveyorError


class LocalEnv:
    """Callable: the variables of `path` now ({} without the file). A file that cannot be read
    or parsed is reported once per change through `warn` and gives nothing."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self._warn = warn
        self._seen: tuple[float, int] | None = None
        self._values: dict[str, str] = {}

    def __call__(self) -> dict[str, str]:
        try:
            stat = self.path.stat()
        except OSError:
            self._seen, self._values = None, {}
            return self._values
        seen = (stat.st_mtime, stat.st_size)
        if seen != self._seen:
            self._seen = seen
            try:
                self._values = parse_dotenv(self.path.read_text(), str(self.path))
            except (OSError, UnicodeDecodeError, ConveyorError) as exc:
                self._values = {}
                self._warn(f"{self.path} is not used: {getattr(exc, 'message', exc)}")
        return self._values
