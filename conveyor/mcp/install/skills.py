"""`conveyor install-skills`: Conveyor's Agent Skills, copied out of the package.

    target       folder                      read by
    claude-code  .claude/skills/NAME/SKILL.md  Claude Code, Copilot
    agents       .agents/skills/NAME/SKILL.md  Codex, Cursor, Copilot, Gemini CLI, opencode, ...

Each skill is conveyor/mcp/content/skills/NAME/SKILL.md in the Agent Skills format (name and
description frontmatter; the name is the folder's), with `{{VERSION}}` replaced by the
package version in `metadata.conveyor-version`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from conveyor.mcp.install.managed import FileChange, plan_file
from conveyor.version import __version__

TARGETS = {"claude-code": Path(".claude") / "skills", "agents": Path(".agents") / "skills"}


def skill_texts() -> dict[str, str]:
    """Every shipped skill by name, stamped with the version."""
    folder = resources.files("conveyor.mcp").joinpath("content", "skills")
    return {
        entry.name: entry.joinpath("SKILL.md")
        .read_text(encoding="utf-8")
        .replace("{{VERSION}}", __version__)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.joinpath("SKILL.md").is_file()
    }


def plan_skills(
    root: Path, targets: list[str], *, uninstall: bool = False, force: bool = False
) -> list[FileChange]:
    changes = []
    for target in targets:
        for name, text in skill_texts().items():
            changes.append(
                plan_file(
                    root / TARGETS[target] / name / "SKILL.md", None if uninstall else text, force
                )
            )
    return changes
