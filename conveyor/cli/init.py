"""`conveyor init [DIR]`: make a folder a Conveyor project.

Adds the config (a `[tool.conveyor]` table appended to an existing pyproject.toml, else a
conveyor.toml) and an example task in `tasks/example.py`. It never overwrites: a folder that
already has a config is refused with nothing changed, and an existing example file is left
alone. The texts come from `conveyor/cli/templates/`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

import click
from rich.text import Text

from conveyor.cli.options import BadArgument
from conveyor.cli.output import console
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
    """A template shipped in conveyor/cli/templates/."""
    return resources.files("conveyor.cli").joinpath("templates", name).read_text(encoding="utf-8")


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
        parse_config(
            tomllib.loads(text), conveyor_toml
        )  # the template must always be a valid config
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


@click.command()
@click.argument(
    "directory",
    required=False,
    default=".",
    metavar="[DIR]",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--project",
    metavar="NAME",
    default=None,
    help="Project name in the config (default: proj_<folder name>).",
)
def init(directory: Path, project: str | None) -> None:
    """Make DIR (default: this folder) a Conveyor project.

    Appends [tool.conveyor] to its pyproject.toml, or writes conveyor.toml when there is no
    pyproject.toml, and adds an example task in tasks/example.py. Nothing is overwritten.
    """
    root = directory.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise BadArgument(f"{directory} is not a folder")
    name = project if project is not None else default_project_name(root)
    if not PROJECT_NAME.fullmatch(name):
        raise BadArgument(
            f"--project must be 1 to 128 letters, digits, '_', '-' or '.', got {name!r}"
        )
    try:
        done = scaffold(root, name)
    except OSError as exc:
        raise ConveyorError(f"cannot write into {root}: {exc.strerror or exc}") from exc
    _report(root, name, done)


def _report(root: Path, project: str, done: Scaffold) -> None:
    out = console()
    where = _shown(root)
    out.print(
        Text.assemble(
            "Initialized Conveyor project ",
            (project, "bold"),
            f" in {root if where == '.' else where}",
        )
    )
    for label, paths in (("created", done.created), ("updated", done.updated), ("kept", done.kept)):
        for path in paths:
            out.print(f"  {label:<8} {_shown(path)}", style="dim" if label == "kept" else "")
    out.print("\nNext steps:", style="bold")
    if root != Path.cwd().resolve():
        out.print(f"  cd {_shown(root)}")
    out.print("  conveyor dev")
    out.print('  conveyor trigger hello-world --payload \'{"name": "Ada"}\' --wait', markup=False)


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is inside it."""
    try:
        relative = os.path.relpath(path, Path.cwd())
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
