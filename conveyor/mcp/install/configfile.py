"""Reading, merging and writing an assistant's config file, touching only Conveyor's entry.

JSON files may carry comments and trailing commas (VS Code, Zed and others write JSONC): they
are read tolerantly. A file whose entry is already what we would write is left untouched, byte
for byte, so a second install changes nothing. Before a file changes, a copy is kept next to it
(`<name>.bak-<time>`), then the new text replaces it atomically with the file's mode kept.
Rewriting drops the comments of a JSONC file; the backup keeps them. TOML (Codex) goes through
tomlkit, which keeps comments and formatting.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from conveyor.errors import ConfigError, ConveyorError

Format = Literal["json", "toml"]
Action = Literal["created", "updated", "unchanged", "removed", "absent"]


def strip_jsonc(text: str) -> str:
    """JSON from JSON with comments: `//` and `/* */` comments and trailing commas removed,
    strings left exactly as they are."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] not in "\r\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif char == ",":
            j = i + 1
            while j < n and (
                text[j].isspace() or text.startswith("//", j) or text.startswith("/*", j)
            ):
                if text.startswith("//", j):
                    while j < n and text[j] not in "\r\n":
                        j += 1
                elif text.startswith("/*", j):
                    end = text.find("*/", j + 2)
                    j = n if end < 0 else end + 2
                else:
                    j += 1
            if j < n and text[j] in "}]":
                i += 1  # a trailing comma
            else:
                out.append(char)
                i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def read_json(path: Path) -> dict[str, Any]:
    """The file's object, {} if it does not exist or is empty; ConfigError if it is not JSON."""
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        return {}
    try:
        data = json.loads(strip_jsonc(text))
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); fix it by hand, nothing was changed"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object at the top; nothing was changed")
    return data


@dataclass(frozen=True)
class Change:
    """What installing into (or removing from) one file did, or would do under --dry-run."""

    path: Path
    action: Action
    backup: Path | None = None
    text: str = ""  # the file's new text (for --dry-run and reports)
    lost_comments: bool = False


def _dig(data: dict[str, Any], keys: tuple[str, ...], create: bool) -> dict[str, Any] | None:
    node = data
    for key in keys:
        child = node.get(key)
        if not isinstance(child, dict):
            if not create:
                return None
            if child is not None:
                raise ConfigError(
                    f"{'.'.join(keys)} in the config is not an object; fix it by hand"
                )
            child = node[key] = {}
        node = child
    return node


def plan_json(path: Path, keys: tuple[str, ...], name: str, entry: dict[str, Any] | None) -> Change:
    """Put `entry` at keys.name in a JSON file (None removes it), keeping everything else."""
    original = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    data = read_json(path)
    container = _dig(data, keys, create=entry is not None)
    if entry is None:
        if container is None or name not in container:
            return Change(path, "absent")
        del container[name]
        if not container and len(keys) == 1:
            del data[keys[0]]
        action: Action = "removed"
    else:
        assert container is not None
        if container.get(name) == entry:
            return Change(path, "unchanged", text=original)
        container[name] = entry
        action = "updated" if path.exists() else "created"
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    lost = bool(original) and strip_jsonc(original) != original
    return Change(path, action, text=text, lost_comments=lost)


def plan_toml(path: Path, keys: tuple[str, ...], name: str, entry: dict[str, Any] | None) -> Change:
    """The same for a TOML file, through tomlkit so comments and layout stay."""
    try:
        import tomlkit
        from tomlkit.exceptions import TOMLKitError
    except ImportError as exc:
        from conveyor.extras import install_hint

        raise ConveyorError(f"writing a TOML config needs tomlkit: {install_hint('mcp')}") from exc
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(original)
    except TOMLKitError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc}); fix it by hand, nothing was changed"
        ) from exc
    node: Any = doc
    for key in keys:
        if key not in node:
            if entry is None:
                return Change(path, "absent")
            node[key] = tomlkit.table(is_super_table=True)
        node = node[key]
    if entry is None:
        if name not in node:
            return Change(path, "absent")
        del node[name]
        if len(keys) == 1 and not node:
            del doc[keys[0]]
        return Change(path, "removed", text=tomlkit.dumps(doc))
    if name in node and node[name].unwrap() == entry:
        return Change(path, "unchanged", text=original)
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = value
    node[name] = table
    return Change(path, "updated" if path.exists() else "created", text=tomlkit.dumps(doc))


def plan(
    path: Path, fmt: Format, keys: tuple[str, ...], name: str, entry: dict[str, Any] | None
) -> Change:
    return (plan_toml if fmt == "toml" else plan_json)(path, keys, name, entry)


def backup(path: Path) -> Path:
    """A copy of the file next to it, named by the time."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    shutil.copy2(path, target)
    return target


def write_text(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its mode (a new file gets 0600 under a home folder's
    dot-folder, as the clients make them, else the default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.conveyor-tmp")
    tmp.write_text(text, encoding="utf-8")
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def apply(change: Change) -> Change:
    """Carry out a planned change: back up, then write. Unchanged and absent do nothing."""
    if change.action in ("unchanged", "absent"):
        return change
    saved = backup(change.path) if change.path.exists() else None
    write_text(change.path, change.text)
    return Change(change.path, change.action, saved, change.text, change.lost_comments)
