"""Text Conveyor owns inside a user's project, and how it is updated in place.

Two kinds, both stamped with the package version:

- a **region** in a file others write too (CLAUDE.md, AGENTS.md), between
  `<!-- conveyor:NAME vX.Y.Z start ... -->` and `<!-- conveyor:NAME end -->`: replaced in place
  on update, appended when missing; the rest of the file is never touched.
- a **dedicated file** (.cursor/rules/conveyor.mdc, a SKILL.md): written whole. A file at that
  path that Conveyor did not write (no stamp) is kept unless forced.

Writing the same version twice changes nothing. Nothing here prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conveyor.mcp.install.configfile import write_text

Action = Literal["created", "updated", "unchanged", "kept", "removed", "absent"]
OWNED_MARKS = ("<!-- conveyor:", "conveyor-version:")


@dataclass(frozen=True)
class FileChange:
    path: Path
    action: Action
    text: str = ""


def start_marker(name: str, version: str) -> str:
    return (
        f"<!-- conveyor:{name} v{version} start: written by `conveyor install-{name}`, "
        "which replaces everything up to the end marker; edit outside it -->"
    )


def end_marker(name: str) -> str:
    return f"<!-- conveyor:{name} end -->"


def _region(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"<!-- conveyor:{re.escape(name)} v[^ ]+ start.*?-->.*?"
        rf"<!-- conveyor:{re.escape(name)} end -->",
        re.DOTALL,
    )


def put_region(text: str, name: str, version: str, body: str) -> str:
    """`text` with Conveyor's region set to `body`: replaced where it is, else appended."""
    block = f"{start_marker(name, version)}\n{body.strip()}\n{end_marker(name)}"
    pattern = _region(name)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    if not text.strip():
        return block + "\n"
    return text.rstrip("\n") + "\n\n" + block + "\n"


def remove_region(text: str, name: str) -> str:
    """`text` without Conveyor's region (and the blank line before it)."""
    without = _region(name).sub("", text, count=1)
    return re.sub(r"\n{3,}", "\n\n", without).strip("\n") + "\n" if without.strip() else ""


def stamp(name: str, version: str) -> str:
    """The line that marks a dedicated file as Conveyor's."""
    return (
        f"<!-- conveyor:{name} v{version}: written by `conveyor install-{name}`; run it again to "
        "update -->"
    )


def owned(text: str) -> bool:
    return any(mark in text for mark in OWNED_MARKS)


def plan_region(path: Path, name: str, version: str, body: str | None) -> FileChange:
    """Set (or with body None, remove) Conveyor's region in a shared file."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    if body is None:
        if not _region(name).search(original):
            return FileChange(path, "absent")
        return FileChange(path, "removed", remove_region(original, name))
    text = put_region(original, name, version, body)
    if text == original:
        return FileChange(path, "unchanged", text)
    return FileChange(path, "updated" if path.exists() else "created", text)


def plan_file(path: Path, text: str | None, force: bool = False) -> FileChange:
    """Write (or with text None, remove) a dedicated file, leaving a file that is not Conveyor's."""
    original = path.read_text(encoding="utf-8") if path.exists() else None
    if text is None:
        if original is None:
            return FileChange(path, "absent")
        return FileChange(path, "removed") if owned(original) or force else FileChange(path, "kept")
    if original == text:
        return FileChange(path, "unchanged", text)
    if original is not None and not owned(original) and not force:
        return FileChange(path, "kept")
    return FileChange(path, "updated" if original is not None else "created", text)


def apply(change: FileChange, root: Path) -> FileChange:
    """Carry out a change in project `root`; a removal also removes the folders it leaves empty
    below `root`."""
    if change.action in ("created", "updated"):
        write_text(change.path, change.text)
    elif change.action == "removed":
        if change.text:
            write_text(change.path, change.text)
        else:
            change.path.unlink()
            _prune(change.path.parent, root)
    return change


def _prune(folder: Path, root: Path) -> None:
    """Remove the folders a removed file leaves empty (.claude/skills/conveyor-tasks, ...),
    never `root`."""
    root = root.resolve()
    for current in (folder, *folder.parents):
        if current.resolve() == root or root not in current.resolve().parents:
            return
        try:
            current.rmdir()
        except OSError:
            return
