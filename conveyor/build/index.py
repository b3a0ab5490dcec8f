"""Indexing a bundle: unpack it, import its tasks the way a worker's executor does, and list
their effective settings (the manifest a deploy sends).

The import runs in a fresh Python process in the unpacked folder, so a file missing from the
bundle, a syntax error, an import error or a duplicate task id fails the deploy here, on the
deploying machine, before anything is uploaded; and task code never runs inside the CLI.

    python -m conveyor.build.index --root DIR --environment prod --out manifest.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from conveyor.bundles import extract_bundle
from conveyor.errors import ConveyorError, TaskLoadError
from conveyor.models import TaskDefinition

INDEX_TIMEOUT = 300.0


def index_bundle(data: bytes, environment: str) -> list[TaskDefinition]:
    """The tasks a bundle defines, imported in a subprocess; TaskLoadError with the loader's
    message (which file, which line) when they fail to import. Task files are named relative
    to the project."""
    with tempfile.TemporaryDirectory(prefix="conveyor-index-") as tmp:
        root = Path(tmp) / "code"
        extract_bundle(data, root)
        out = Path(tmp) / "manifest.json"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "conveyor.build.index",
                    "--root",
                    str(root),
                    "--environment",
                    environment,
                    "--out",
                    str(out),
                ],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=INDEX_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise TaskLoadError(
                f"importing the tasks took longer than {INDEX_TIMEOUT:g}s; does a module do "
                "work at import time?"
            ) from exc
        if not out.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise TaskLoadError(
                f"importing the tasks failed (exit code {proc.returncode}): {tail[0]}"
            )
        result = json.loads(out.read_text())
    if "error" in result:
        raise TaskLoadError(result["error"])
    return [TaskDefinition.model_validate(t) for t in result["tasks"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="conveyor-index")
    parser.add_argument("--root", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from conveyor.config import load_config
    from conveyor.worker.discovery import definitions, discover

    try:
        config = load_config(args.root)
        found = definitions(discover(config), config, args.environment)
        root = config.root.resolve()
        for task in found:
            if task.file and Path(task.file).resolve().is_relative_to(root):
                task.file = Path(task.file).resolve().relative_to(root).as_posix()
        result: dict[str, object] = {"tasks": [t.model_dump(mode="json") for t in found]}
    except ConveyorError as exc:
        result = {"error": exc.message}
    except (
        Exception
    ) as exc:  # the config loader and discovery say what they can; anything else as is
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
