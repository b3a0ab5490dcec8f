"""What the agent is told: how to write the changelog, and the commits it covers."""

from __future__ import annotations

from typing import Any

SYSTEM_PROMPT = """You write changelogs for software releases. You read commit messages and, when a
message is unclear, the repository itself (read-only: Read, Grep, Glob, git log/show/diff). You
answer with the changelog section only, in Markdown, and nothing else:

## <version>

### Added
- ...
### Changed
- ...
### Fixed
- ...

Group changes by what a user of the software notices, not by commit. Leave out commits that do not
change what users see (refactors, tests, CI) unless they matter to them. Leave out empty groups.
Write each entry as one plain sentence; never invent a change that the history does not show."""

MAX_BODY_CHARS = 600


def build_prompt(history: dict[str, Any], version: str) -> str:
    lines = [
        f"Write the changelog section for version {version!r}, covering the commits in "
        f"{history['range']} (newest first):",
        "",
    ]
    for commit in history["commits"]:
        lines.append(
            f"- {commit['sha'][:10]} {commit['subject']} ({commit['author']}, "
            f"{commit['date'][:10]}, {commit['files_changed']} files)"
        )
        body = commit["body"].strip()
        if body:
            clipped = body if len(body) <= MAX_BODY_CHARS else body[:MAX_BODY_CHARS] + " [...]"
            lines.extend(f"    {line}" for line in clipped.splitlines())
    if history.get("truncated"):
        lines += ["", "The list stops at the newest commits; older ones in the range are left out."]
    return "\n".join(lines)
