"""Finding tasks: import every module under the config's `dirs` and collect the Task objects
defined at module level. Runs inside executor processes only, never in the supervisor."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

from conveyor.config import Config
from conveyor.errors import ConfigError, TaskDefinitionError
from conveyor.models import TaskDefinition
from conveyor.sdk.task import Task


class TaskLoadError(TaskDefinitionError):
    """The task code could not be imported."""

    code = "task_load_failed"


def module_names(config: Config) -> list[str]:
    """Dotted names of every Python module under the task dirs, in a stable order."""
    names = []
    for folder in config.task_dirs():
        if not folder.is_dir():
            raise ConfigError(f"{config.source}: dirs names {folder.relative_to(config.root)!s}, which is not a folder")
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(config.root)
            if any(part.startswith((".", "__pycache__")) for part in rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def discover(config: Config) -> dict[str, Task]:
    """Import the task modules; the tasks they define, by id. Raises TaskLoadError for an import
    error (with its location) and TaskDefinitionError for a duplicate id (naming both files)."""
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    found: dict[str, Task] = {}
    seen: set[int] = set()
    for name in module_names(config):
        try:
            module = importlib.import_module(name)
        except TaskDefinitionError as exc:
            raise TaskLoadError(f"{_where(name, config)}: {exc.message}") from exc
        except BaseException as exc:
            raise TaskLoadError(f"cannot import {_where(name, config)}: {_summary(exc, config)}") from exc
        for value in list(vars(module).values()):
            if not isinstance(value, Task) or id(value) in seen:
                continue
            seen.add(id(value))
            other = found.get(value.id)
            if other is not None:
                raise TaskDefinitionError(
                    f"duplicate task id {value.id!r}: defined in {_rel(other.file, config)} and {_rel(value.file, config)}"
                )
            found[value.id] = value
    return found


def definitions(tasks: dict[str, Task], config: Config, environment: str) -> list[TaskDefinition]:
    """The effective settings of discovered tasks: each task's options over the config's
    defaults (retries off in dev when the config says so)."""
    retries_enabled = environment != "dev" or config.retries.enabled_in_dev
    return [t.definition(default_retry=config.retries.default.policy(), max_duration=config.max_duration,
                         machine=config.machine, retries_enabled=retries_enabled) for t in tasks.values()]


def _where(module: str, config: Config) -> str:
    return module.replace(".", os.sep) + ".py"


def _rel(path: str | None, config: Config) -> str:
    if not path:
        return "?"
    try:
        return str(Path(path).resolve().relative_to(config.root.resolve()))
    except ValueError:
        return path


def _summary(exc: BaseException, config: Config) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(config.root) in f.filename]
    location = f" (at {_rel(frames[-1].filename, config)}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError):
        location = f" (at {_rel(exc.filename, config)}:{exc.lineno})"
    return f"{type(exc).__name__}: {exc}{location}"
