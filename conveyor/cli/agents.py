"""`conveyor install-rules` and `conveyor install-skills`: teach coding assistants Conveyor.

Both write into the project folder only, stamp what they write with the package version, and
update it in place when run again (a run that finds everything current changes nothing).
What they write and where: conveyor/mcp/install/rules.py and skills.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from conveyor.errors import ConveyorError
from conveyor.mcp.install import managed, rules, skills

F = TypeVar("F", bound=Callable[..., Any])


def _project(directory: Path | None) -> Path:
    return (directory or Path.cwd()).resolve()


def _report(root: Path, changes: list[managed.FileChange], dry_run: bool) -> None:
    words = {
        "created": "create",
        "updated": "update",
        "removed": "remove",
        "unchanged": "leave (current)",
        "kept": "leave (not written by conveyor; --force replaces it)",
        "absent": "leave (nothing there)",
    }
    for change in changes:
        shown = os.path.relpath(change.path, root)
        if dry_run:
            click.echo(f"would {words[change.action]}: {shown}")
        elif change.action == "unchanged":
            click.echo(f"up to date  {shown}")
        elif change.action == "kept":
            click.echo(f"kept        {shown} (not written by conveyor; --force replaces it)")
        elif change.action == "absent":
            click.echo(f"absent      {shown}")
        else:
            click.echo(f"{change.action:<11} {shown}")


def _run(root: Path, changes: list[managed.FileChange], dry_run: bool) -> None:
    if not dry_run:
        try:
            changes = [managed.apply(change, root) for change in changes]
        except OSError as exc:
            raise ConveyorError(
                f"cannot write {exc.filename or root}: {exc.strerror or exc}"
            ) from exc
    _report(root, changes, dry_run)


_common = [
    click.option(
        "--dir",
        "directory",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None,
        help="The project folder (default: this folder).",
    ),
    click.option("--dry-run", is_flag=True, help="Show what would change; write nothing."),
    click.option("--uninstall", is_flag=True, help="Remove what conveyor wrote instead."),
    click.option(
        "--force",
        is_flag=True,
        help="Replace a file at one of these paths that conveyor did not write.",
    ),
]


def _with_common(fn: F) -> F:
    """Add --dir, --dry-run, --uninstall and --force."""
    for option in reversed(_common):
        fn = option(fn)
    return fn


@click.command(
    "install-rules", short_help="Write Conveyor's rules for coding assistants into the project."
)
@click.option(
    "--client",
    "--target",
    "targets",
    multiple=True,
    type=click.Choice(list(rules.TARGETS)),
    help="Only these assistants (repeatable; default: all). --target is the older name.",
)
@_with_common
def install_rules(
    targets: tuple[str, ...], directory: Path | None, dry_run: bool, uninstall: bool, force: bool
) -> None:
    """Write what coding assistants should know about Conveyor (writing tasks, triggering,
    queues, waits, what replay asks of code, common mistakes) into the project: a marked
    region in CLAUDE.md and AGENTS.md, and .cursor/rules/conveyor.mdc, .windsurf/rules/conveyor.md,
    .github/instructions/conveyor.instructions.md and .clinerules/conveyor.md. Run it again
    after upgrading Conveyor to update them in place."""
    root = _project(directory)
    _run(
        root,
        rules.plan_rules(root, list(targets or rules.TARGETS), uninstall=uninstall, force=force),
        dry_run,
    )


@click.command("install-skills", short_help="Write Conveyor's Agent Skills into the project.")
@click.option(
    "--client",
    "--target",
    "targets",
    multiple=True,
    type=click.Choice(list(skills.TARGETS)),
    help="claude-code (.claude/skills) or agents (.agents/skills); default: both.",
)
@_with_common
def install_skills(
    targets: tuple[str, ...], directory: Path | None, dry_run: bool, uninstall: bool, force: bool
) -> None:
    """Write Conveyor's Agent Skills (conveyor-tasks: writing tasks; conveyor-runs: triggering and
    debugging runs) to .claude/skills/ and .agents/skills/, where Claude Code, Codex, Cursor,
    Copilot, Gemini CLI and others find them. Run it again after upgrading Conveyor."""
    root = _project(directory)
    _run(
        root,
        skills.plan_skills(root, list(targets or skills.TARGETS), uninstall=uninstall, force=force),
        dry_run,
    )
