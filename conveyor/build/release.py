"""A release: what a deploy uploads, built and checked on the deploying machine.

    prepare_release(config, environment)   bundle (bundle.py) -> tasks imported from it (index.py)
                                            -> details (Python, Conveyor, git branch and commit)
    release.upload_arguments(...)           the keyword arguments of `client.deployments.create`

`conveyor deploy` (conveyor/cli/deploy.py) and the MCP `deploy` tool (conveyor/mcp/tools/deploys.py)
both deploy through here, so a deploy is the same whoever asks for it. A broken import fails
`prepare_release`, before anything is uploaded. Nothing here talks to a server: the caller
uploads with its own client (sync or async).
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.build.bundle import Bundle, build_bundle
from conveyor.build.index import index_bundle
from conveyor.config import Config
from conveyor.models import TaskDefinition


@dataclass(frozen=True, slots=True)
class Release:
    """A bundle whose tasks imported, ready to upload as a new version."""

    config: Config
    bundle: Bundle
    tasks: list[TaskDefinition]
    details: dict[str, Any]

    def upload_arguments(
        self, environment: str, branch: str | None, *, promote: bool
    ) -> dict[str, Any]:
        """What `client.deployments.create(**...)` takes to upload it (Client or AsyncClient)."""
        return {
            "environment": environment,
            "tasks": self.tasks,
            "bundle": self.bundle.data,
            "lock_sha256": self.bundle.lock_sha256,
            "details": self.details,
            "branch": branch,
            "promote": promote,
        }

    def summary(self) -> dict[str, Any]:
        """The release as JSON, for a dry run: files, size, hash, lock and tasks."""
        return {
            "files": self.bundle.files,
            "bundle_size": len(self.bundle.data),
            "bundle_sha256": self.bundle.sha256,
            "lock": self.bundle.lock,
            "tasks": [t.model_dump(mode="json") for t in self.tasks],
        }


def size_text(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n / 1024:.1f} KB"


def prepare_release(
    config: Config, environment: str, report: Callable[[str], None] = lambda _: None
) -> Release:
    """Bundle the project of `config` and import its tasks from the bundle in a fresh process,
    as a worker of `environment` will. `report` hears each step as a line of text. ConfigError
    for a bad project, TaskLoadError (with the file and line) when the tasks fail to import."""
    from conveyor.version import __version__

    config.check_dirs()
    bundle = build_bundle(config)
    packages = len(bundle.lock.splitlines())
    report(
        f"bundled {len(bundle.files)} files, {size_text(len(bundle.data))} "
        f"(lock: {packages} package{'s' if packages != 1 else ''})"
    )
    tasks = index_bundle(bundle.data, environment)
    report(
        f"imported {len(tasks)} task{'s' if len(tasks) != 1 else ''} from the bundle: "
        + ", ".join(t.id for t in tasks[:8])
        + (", …" if len(tasks) > 8 else "")
    )
    details: dict[str, Any] = {
        "python": platform.python_version(),
        "conveyor": __version__,
        "files": len(bundle.files),
    }
    git = git_details(config.root)
    if git:
        details["git"] = git
    return Release(config, bundle, tasks, details)


def git_details(root: Path) -> dict[str, str]:
    """The branch and commit of the project's git checkout, when it is one."""
    found = {}
    for name, args in (
        ("branch", ["rev-parse", "--abbrev-ref", "HEAD"]),
        ("commit", ["rev-parse", "HEAD"]),
    ):
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        if out.returncode != 0:
            return {}
        found[name] = out.stdout.strip()
    return found
