"""`conveyor init [DIR]`: make a folder a Conveyor project.

Adds the config (a `[tool.conveyor]` table appended to an existing pyproject.toml, else a
conveyor.toml) and an example task in `tasks/example.py`. It never overwrites: a folder that
already has a config is refused with nothing changed, and an existing example file is left
alone. What it writes is conveyor/scaffold (shared with the MCP server's `initialize_project`).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.text import Text

from conveyor.cli.options import BadArgument
from conveyor.cli.output import console
from conveyor.errors import ConveyorError
from conveyor.scaffold import PROJECT_NAME, Scaffold, default_project_name, scaffold


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
