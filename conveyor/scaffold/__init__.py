"""Making a folder a Conveyor project: the config (a `[tool.conveyor]` table appended to an
existing pyproject.toml, else a conveyor.toml) and an example task in `tasks/example.py`, for
`conveyor init` and the MCP server's `initialize_project`. It never overwrites: a folder that
already has a config is refused with nothing changed, and an existing example file is left alone.
The texts come from `templates/`. Nothing here prints.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from conveyor.config import parse_config
from conveyor.errors import ConfigError, ConveyorError

PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass
class Scaffold:
    """What `init` did, to report it: files created or changed, and files left alone."""

    created: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def template(name: str) -> str:
    """A template shipped in conveyor/scaffold/templates/."""
    return (
        resources.files("conveyor.scaffold").joinpath("templates", name).read_text(encoding="utf-8")
    )


def default_project_name(root: Path) -> str:
    """`proj_<folder name>`, reduced to letters, digits and underscores."""
    slug = re.sub(r"[^a-z0-9]+", "_", root.name.lower()).strip("_")[:100]
    return f"proj_{slug}" if slug else "proj_local"


def scaffold(root: Path, project: str) -> Scaffold:
    """Write the config and the example task into `root`."""
    done = Scaffold()
    root.mkdir(parents=True, exist_ok=True)
    _write_config(root, project, done)
    example = root / "tasks" / "example.py"
    if example.exists():
        done.kept.append(example)
    else:
        example.parent.mkdir(parents=True, exist_ok=True)
        example.write_text(template("example_task.py.tmpl"), encoding="utf-8")
        done.created.append(example)
    return done


def _write_config(root: Path, project: str, done: Scaffold) -> None:
    conveyor_toml = root / "conveyor.toml"
    pyproject = root / "pyproject.toml"
    if conveyor_toml.exists():
        raise ConveyorError(
            f"{conveyor_toml} already exists: this folder is a Conveyor project already; "
            "nothing was changed"
        )
    values = {"project": json.dumps(project, ensure_ascii=False)[1:-1]}
    if not pyproject.exists():
        text = Template(template("conveyor.toml.tmpl")).substitute(values)
        # the template must always be a valid config
        parse_config(tomllib.loads(text), conveyor_toml)
        conveyor_toml.write_text(text, encoding="utf-8")
        done.created.append(conveyor_toml)
        return

    original = pyproject.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(original)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{pyproject}: invalid TOML: {exc}; fix it, then run `conveyor init` again"
        ) from exc
    tool = data.get("tool")
    if isinstance(tool, dict) and "conveyor" in tool:
        raise ConveyorError(
            f"{pyproject} already has [tool.conveyor]: this folder is a Conveyor project "
            "already; nothing was changed"
        )
    section = Template(template("pyproject_section.toml.tmpl")).substitute(values)
    text = original + ("" if original.endswith("\n") or not original else "\n") + section
    try:
        merged = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # e.g. `tool = {...}` written as an inline table, which cannot be extended
        raise ConfigError(
            f"{pyproject}: cannot append [tool.conveyor] to this file ({exc}); add the table "
            "by hand or use a conveyor.toml; nothing was changed"
        ) from exc
    parse_config(merged.get("tool", {}).get("conveyor"), pyproject, "tool.conveyor.")
    pyproject.write_text(text, encoding="utf-8")
    done.updated.append(pyproject)
