"""`conveyor dev` on task code with a broken module: the other modules' tasks run, the broken
one is named (file, line, error) in the console and in the 404 of its tasks, and a module
broken while editing leaves the code loaded before serving its tasks. A `conveyor worker`
(whose task list replaces the environment's) refuses code with a broken module."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import NotFound
from conveyor.engine import Engine
from conveyor.platform.link import LocalLink
from conveyor.store import open_store
from conveyor.worker.supervisor import Supervisor
from tests.e2e.conftest import wait_for


def test_good_modules_load_when_one_fails_and_the_broken_one_is_named(fresh_dev):
    fleet = fresh_dev.root / "tasks" / "fleet.py"
    fleet_source = fleet.read_text()
    fleet.write_text('"""A module with a syntax error on line 3."""\n\ndef broken(:\n    pass\n')
    fresh_dev.start()
    out = fresh_dev.output()
    assert "Not loaded: tasks/fleet.py, line 3: SyntaxError" in out, out
    with fresh_dev.client() as client:
        assert (
            client.runs.poll(client.trigger("echo", {"a": 1}).id, timeout=15).status == "COMPLETED"
        )
        with pytest.raises(NotFound) as missing:
            client.trigger("fleet", {})
        assert (
            "task 'fleet' is not defined in this environment; tasks/fleet.py failed to import: "
            "SyntaxError" in str(missing.value)
        )
        assert "(line 3)" in str(missing.value)

        core = fresh_dev.root / "tasks" / "core.py"  # broken while editing: echo keeps its old code
        good = core.read_text()
        core.write_text(good.replace("return payload\n", "return payload +\n", 1))
        wait_for(
            lambda: "Kept the code loaded before" in fresh_dev.output(), what="the kept generation"
        )
        assert client.runs.poll(client.trigger("echo", {"a": 2}).id, timeout=15).output == {"a": 2}

        core.write_text(good)  # both fixed: a clean load takes over and names no module
        fleet.write_text(fleet_source)
        wait_for(
            lambda: any(
                "Reloaded tasks" in line and "fleet" in line
                for line in fresh_dev.output().splitlines()
            ),
            what="the fixed reload",
        )
        assert client.runs.poll(client.trigger("fleet", {}).id, timeout=15).status == "COMPLETED"


def test_a_worker_of_its_own_code_refuses_code_with_a_broken_module_while_dev_runs_the_rest(
    tmp_path,
):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conveyor]\nproject = "proj_partial"\ndirs = ["tasks"]\n'
    )
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.py").write_text(
        "from conveyor import task\n\n@task(id='good')\nasync def good(payload):\n    return 1\n"
    )
    (tmp_path / "tasks" / "broken.py").write_text("import nonexistent_module_for_the_test\n")

    async def load(partial: bool) -> tuple[bool, str | None, list[str], list[str]]:
        store = open_store(str(tmp_path / f"state-{partial}.db"))
        store.migrate()
        engine = Engine(store)
        env = engine.environments.ensure("proj_partial", "dev", "dev")
        supervisor = Supervisor(
            LocalLink(engine, env.id),
            root=tmp_path,
            worker_id="w",
            executors=1,
            partial_loads=partial,
        )
        try:
            loaded = await supervisor.load()
            return (
                loaded,
                supervisor.load_error,
                [t.id for t in engine.tasks.list(env.id)],
                [f.file for f in engine.tasks.load_failures(env.id)],
            )
        finally:
            await supervisor.stop(grace=0)
            store.close()

    loaded, error, tasks, failures = asyncio.run(load(True))  # conveyor dev
    assert loaded and error is None and tasks == ["good"] and failures == ["tasks/broken.py"]
    loaded, error, tasks, failures = asyncio.run(load(False))  # conveyor worker
    assert not loaded and tasks == [] and failures == []
    assert error is not None and "tasks/broken.py failed to import: ModuleNotFoundError" in error
