"""Finding tasks: import every module under the config's `dirs` and collect the Task objects
defined at module level. Runs inside executor processes only, never in the supervisor."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.config import Config
from conveyor.errors import ConfigError, TaskDefinitionError, TaskLoadError
from conveyor.models import ModuleFailure, TaskDefinition
from conveyor.sdk.task import Task


def module_names(config: Config) -> list[str]:
    """Dotted names of every Python module under the task dirs, in a stable order."""
    names = []
    for folder in config.task_dirs():
        if not folder.is_dir():
            raise ConfigError(
                f"{config.source}: dirs names {folder.relative_to(config.root)!s}, which is not a "
                "folder"
            )
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(config.root)
            if any(part.startswith((".", "__pycache__")) for part in rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


@dataclass(frozen=True)
class Discovery:
    """What importing the task modules gave: the tasks of the modules that imported, by id,
    and the modules that did not."""

    tasks: dict[str, Task]
    failures: list[ModuleFailure] = field(default_factory=list)


def load_tasks(config: Config) -> Discovery:
    """Import every task module, going on past one that fails: its failure (file, line, error)
    is recorded and the other modules' tasks are kept. A duplicate task id still fails the
    whole load (TaskDefinitionError naming both files): which one would run is not a guess to
    make."""
    root = str(config.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    found: dict[str, Task] = {}
    failures: list[ModuleFailure] = []
    seen: set[int] = set()
    for name in module_names(config):
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # any error of user code, even SystemExit, is the module's
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(_failure(name, exc, config))
            continue
        for value in list(vars(module).values()):
            if not isinstance(value, Task) or id(value) in seen:
                continue
            seen.add(id(value))
            other = found.get(value.id)
            if other is not None:
                raise TaskDefinitionError(
                    f"duplicate task id {value.id!r}: defined in {_rel(other.file, config)} and "
                    f"{_rel(value.file, config)}"
                )
            found[value.id] = value
    return Discovery(found, failures)


def discover(config: Config) -> dict[str, Task]:
    """Import the task modules; the tasks they define, by id. Strict (a deploy bundle, the
    index of a version): raises TaskLoadError for the first module that fails to import (with
    its location) and TaskDefinitionError for a duplicate id (naming both files)."""
    found = load_tasks(config)
    if found.failures:
        first = found.failures[0]
        line = f" (line {first.line})" if first.line else ""
        raise TaskLoadError(f"cannot import {first.file}: {first.error}{line}")
    return found.tasks


def definitions(tasks: dict[str, Task], config: Config, environment: str) -> list[TaskDefinition]:
    """The effective settings of discovered tasks: each task's options over the config's
    defaults (retries off in dev when the config says so)."""
    retries_enabled = environment != "dev" or config.retries.enabled_in_dev
    return [
        t.definition(
            default_retry=config.retries.default.policy(),
            max_duration=config.max_duration,
            machine=config.machine,
            retries_enabled=retries_enabled,
        )
        for t in tasks.values()
    ]


def _where(module: str, config: Config) -> str:
    return module.replace(".", os.sep) + ".py"


def _rel(path: str | None, config: Config) -> str:
    if not path:
        return "?"
    try:
        return str(Path(path).resolve().relative_to(config.root.resolve()))
    except ValueError:
        return path


def _failure(module: str, exc: BaseException, config: Config) -> ModuleFailure:
    file = _where(module, config)
    if isinstance(exc, TaskDefinitionError):  # the SDK refused a definition: its message says what
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if str(config.root) in f.filename
        ]
        return ModuleFailure(
            file=file, line=frames[-1].lineno if frames else None, error=exc.message
        )
    if isinstance(exc, SyntaxError) and exc.filename:
        where = _rel(exc.filename, config)
        detail = exc.msg
        if where != file:  # a module it imports
            detail += f" (in {where})"
        return ModuleFailure(
            file=file,
            line=exc.lineno if where == file else None,
            error=f"{type(exc).__name__}: {detail}",
        )
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(config.root) in f.filename]
    line = None
    detail = f"{type(exc).__name__}: {exc}"
    if frames:
        where = _rel(frames[-1].filename, config)
        if where == file:
            line = frames[-1].lineno
        else:
            detail += f" (at {where}:{frames[-1].lineno})"
    return ModuleFailure(file=file, line=line, error=detail)
