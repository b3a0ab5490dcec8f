"""The engine's shape, as the code around it relies on it: a small facade over explicit parts
named like the client's namespaces, each a plain class given its collaborators when it is made.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import conveyor.engine
from conveyor.engine import Engine
from conveyor.engine.alerts import Alerts
from conveyor.engine.bulk import Bulk
from conveyor.engine.deployments import Deployments
from conveyor.engine.durable import Durable
from conveyor.engine.environments import Environments
from conveyor.engine.events import Events
from conveyor.engine.queues import Queues
from conveyor.engine.runs import Runs
from conveyor.engine.schedules import Schedules
from conveyor.engine.tasks import Tasks
from conveyor.engine.ticker import Ticker
from conveyor.engine.transitions import Transitions
from conveyor.engine.waitpoints import Waitpoints
from conveyor.engine.workers import Workers
from conveyor.store import open_store

ENGINE_DIR = Path(conveyor.engine.__file__).parent

PARTS = {
    "environments": Environments,
    "tasks": Tasks,
    "runs": Runs,
    "queues": Queues,
    "waitpoints": Waitpoints,
    "workers": Workers,
    "durable": Durable,
    "deployments": Deployments,
    "schedules": Schedules,
    "events": Events,
    "bulk": Bulk,
    "alerts": Alerts,
}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    store = open_store(str(tmp_path / "engine.db"))
    store.migrate()
    return Engine(store)


@pytest.mark.parametrize("name", sorted(PARTS))
def test_each_part_is_reachable_from_the_engine(engine: Engine, name: str) -> None:
    assert isinstance(getattr(engine, name), PARTS[name])


def test_accounts_is_a_part_too(engine: Engine) -> None:
    from conveyor.engine import Accounts

    assert isinstance(engine.accounts, Accounts)


def test_the_facade_only_builds_parts_and_ticks() -> None:
    public = {name for name in vars(Engine) if not name.startswith("_")}
    assert public == {"tick"}


def test_the_engine_keeps_no_old_method_names(engine: Engine) -> None:
    for old in ("trigger", "get_run", "lease", "heartbeat", "cancel", "create_token", "deploy"):
        assert not hasattr(engine, old), f"Engine.{old} is a part's method now"


@pytest.mark.parametrize(
    "part",
    [
        Environments,
        Tasks,
        Runs,
        Queues,
        Waitpoints,
        Workers,
        Durable,
        Deployments,
        Schedules,
        Ticker,
    ],
)
def test_parts_take_their_collaborators_in_the_constructor(part: type) -> None:
    parameters = inspect.signature(part).parameters
    assert "store" in parameters
    collaborators = {
        "clock",
        "events",
        "transitions",
        "tasks",
        "waitpoints",
        "workers",
        "schedules",
        "bulk",
        "envvars",
        "alerts",
    }
    assert set(parameters) - {"store", "timeout"} <= collaborators
    assert set(parameters) & {"events", "transitions"}


def test_shared_internals_are_a_part_of_their_own() -> None:
    parameters = inspect.signature(Transitions).parameters
    # and those told of run starts and ends, once committed, and of run ends inside their
    # transaction (a callback: alerts owed by a failure): no other part
    assert list(parameters) == ["store", "clock", "observers", "run_ended"]


def test_no_class_in_the_engine_uses_mixin_inheritance() -> None:
    for path in sorted(ENGINE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert bases in ([], ["ConveyorError"], ["Protocol"]), (
                    f"{path.name}: {node.name}{bases}"
                )


def test_no_class_in_the_engine_borrows_attributes_by_annotation() -> None:
    """A class body declares no attribute it does not set (what a mixin borrows from its host),
    dataclasses aside."""
    for path in sorted(ENGINE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.decorator_list:
                borrowed = [
                    ast.unparse(s.target)
                    for s in node.body
                    if isinstance(s, ast.AnnAssign) and s.value is None
                ]
                assert not borrowed, f"{path.name}: {node.name} borrows {borrowed}"


def test_the_stutter_is_gone() -> None:
    assert not (ENGINE_DIR / "engine.py").exists()
