"""The dependency lock of a deploy: the project's declared dependencies and theirs, pinned to
the versions installed on the deploying machine.

Declared means `[project].dependencies` of the project's pyproject.toml and the lines of a
`requirements.txt` beside it. Each is pinned (`name==version`) with what this environment has
installed, and so is everything it requires, so a worker installs what the deploy was checked
with. Left out: Conveyor itself (the worker brings its own) and the packages named in
`build.external`, which the workers' environment provides. A declared package that is not
installed here stays as declared, unpinned.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from conveyor.config import Config

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(config: Config) -> list[str]:
    """Requirement strings the project declares."""
    found: list[str] = []
    pyproject = config.root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text())
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            data = {}
        project = data.get("project")
        if isinstance(project, dict) and isinstance(project.get("dependencies"), list):
            found += [d for d in project["dependencies"] if isinstance(d, str)]
    requirements = config.root / "requirements.txt"
    if requirements.is_file():
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                found.append(line)
    return found


def dependency_lock(config: Config) -> str:
    """The lock's text: one requirement a line, sorted; "" when the project declares nothing."""
    skipped = {normalize(n) for n in config.build.external} | {"conveyor"}
    pinned: dict[str, str] = {}
    pending = list(declared_dependencies(config))
    while pending:
        requirement = pending.pop()
        match = _NAME.match(requirement)
        if match is None:
            continue
        name = normalize(match.group(1))
        if name in skipped or name in pinned:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pinned[name] = requirement.strip()
            continue
        pinned[name] = f"{name}=={dist.version}"
        pending += _requirements_of(dist)
    return "".join(f"{line}\n" for _, line in sorted(pinned.items()))


def _requirements_of(dist: metadata.Distribution) -> list[str]:
    """What an installed distribution requires here (its markers evaluated, extras left out)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # without packaging the lock pins the declared packages only
        return []
    found = []
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement.name)
    return found
