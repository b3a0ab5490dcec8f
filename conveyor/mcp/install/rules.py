"""`conveyor install-rules`: Conveyor's rules for each coding assistant, stamped with the version.

    target       file                                         how
    claude-code  CLAUDE.md                                    region between markers
    agents       AGENTS.md  (Codex, Cursor, Copilot, Zed, ...) region between markers
    cursor       .cursor/rules/conveyor.mdc                   dedicated; description,
                                                              alwaysApply: false
    windsurf     .windsurf/rules/conveyor.md                  dedicated; trigger: model_decision
    vscode       .github/instructions/conveyor.instructions.md dedicated; applyTo
    cline        .clinerules/conveyor.md (a region when .clinerules is one file)

The text is conveyor/mcp/content/rules.md. Pure planning; `managed.apply` writes.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from conveyor.mcp.install.managed import FileChange, plan_file, plan_region, stamp
from conveyor.version import __version__

NAME = "rules"
DESCRIPTION = (
    "How to write, trigger and debug Conveyor tasks (durable background tasks) in this project; "
    "use when editing task code or code that imports conveyor"
)
GLOBS = "**/*.py"


def rules_text() -> str:
    return (
        resources.files("conveyor.mcp").joinpath("content", "rules.md").read_text(encoding="utf-8")
    )


def _dedicated(frontmatter: str) -> Callable[[Path, str | None, bool], FileChange]:
    def plan(path: Path, body: str | None, force: bool) -> FileChange:
        if body is None:
            return plan_file(path, None, force)
        text = f"---\n{frontmatter}---\n\n{stamp(NAME, __version__)}\n\n{body.strip()}\n"
        return plan_file(path, text, force)

    return plan


def _plain(path: Path, body: str | None, force: bool) -> FileChange:
    """A dedicated file without frontmatter (Cline applies every file in .clinerules/)."""
    text = None if body is None else f"{stamp(NAME, __version__)}\n\n{body.strip()}\n"
    return plan_file(path, text, force)


def _region(path: Path, body: str | None, force: bool) -> FileChange:
    return plan_region(path, NAME, __version__, body)


def _cline(path: Path, body: str | None, force: bool) -> FileChange:
    if path.is_file():  # a single .clinerules file: share it
        return plan_region(path, NAME, __version__, body)
    return _plain(path / "conveyor.md", body, force)


TARGETS: dict[str, tuple[str, Callable[[Path, str | None, bool], FileChange]]] = {
    "claude-code": ("CLAUDE.md", _region),
    "agents": ("AGENTS.md", _region),
    # Cursor and Windsurf pick the rule by its description (agent-requested / model decision):
    # it matters for task code, not every Python file.
    "cursor": (
        ".cursor/rules/conveyor.mdc",
        _dedicated(f"description: {DESCRIPTION}\nalwaysApply: false\n"),
    ),
    "windsurf": (
        ".windsurf/rules/conveyor.md",
        _dedicated(f"trigger: model_decision\ndescription: {DESCRIPTION}\n"),
    ),
    "vscode": (
        ".github/instructions/conveyor.instructions.md",
        _dedicated(f'applyTo: "{GLOBS}"\n'),
    ),
    "cline": (".clinerules", _cline),
}


def plan_rules(
    root: Path, targets: list[str], *, uninstall: bool = False, force: bool = False
) -> list[FileChange]:
    """What installing (or removing) the rules for `targets` in project `root` changes."""
    body = None if uninstall else rules_text()
    changes = []
    for target in targets:
        relative, plan = TARGETS[target]
        changes.append(plan(root / relative, body, force))
    return changes
