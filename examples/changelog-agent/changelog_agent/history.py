"""A repository's history between two refs, read with `git log`: the commits a changelog covers.
Read-only; needs `git` on the worker."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_FIELD, _RECORD = "\x1f", "\x1e"  # separators that never occur in commit text


class HistoryError(Exception):
    """The repository or a ref cannot be read."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str  # ISO 8601, author date
    subject: str
    body: str
    files_changed: int


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        raise HistoryError("git is not installed on this worker") from None
    if done.returncode != 0:
        raise HistoryError(
            f"git {' '.join(args[:2])} failed in {repo}: {done.stderr.strip()[:300]}"
        )
    return done.stdout


def latest_tag(repo: Path, until: str = "HEAD") -> str | None:
    """The most recent tag reachable from `until`, or None if there is none."""
    try:
        return _git(repo, "describe", "--tags", "--abbrev=0", until).strip() or None
    except HistoryError:
        return None


def read_history(
    repo: str | Path, since: str | None = None, until: str = "HEAD", max_commits: int = 500
) -> dict[str, Any]:
    """The commits in `since..until`, newest first (merges left out). `since` defaults to the latest
    tag before `until`, else the whole history. JSON-ready, so a task can journal it."""
    path = Path(repo)
    if not (path / ".git").exists() and not path.joinpath("HEAD").exists():
        raise HistoryError(f"{path} is not a git repository")
    start = since if since is not None else latest_tag(path, until)
    revision = f"{start}..{until}" if start else until
    out = _git(
        path,
        "log",
        "--no-merges",
        f"--max-count={max_commits}",
        "--shortstat",
        f"--format={_RECORD}%H{_FIELD}%an{_FIELD}%aI{_FIELD}%s{_FIELD}%b{_FIELD}",
        revision,
    )
    commits = []
    for record in out.split(_RECORD)[1:]:
        sha, author, date, subject, body, stat = record.split(_FIELD)
        files = stat.strip().split(" file", 1)[0]
        commits.append(
            Commit(
                sha,
                author,
                date,
                subject.strip(),
                body.strip(),
                int(files) if files.isdigit() else 0,
            )
        )
    return {
        "range": revision,
        "since": start,
        "until": until,
        "commits": [asdict(c) for c in commits],
        "truncated": len(commits) == max_commits,
    }
