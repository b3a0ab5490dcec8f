"""`conveyor dev` on task code with a broken module: the other modules' tasks run, the broken
one is named (file, line, error) in the console and in the 404 of its tasks, and a module
broken while editing leaves the code loaded before serving its tasks."""

from __future__ import annotations

import pytest

from conveyor import NotFound
from tests.e2e.conftest import wait_for


def test_good_modules_load_when_one_fails_and_the_broken_one_is_named(fresh_dev):
    fleet = fresh_dev.root / "tasks" / "fleet.py"
    fleet_source = fleet.read_text()
    fleet.write_text('"""A module with a syntax error on line 3."""\n\ndef broken(:\n    pass\n')
    fresh_dev.start()
    out = fresh_dev.output()
    assert "Not loaded: tasks/fleet.py, line 3: SyntaxError" in out, out
    with fresh_dev.client() as client:
        assert client.runs.poll(client.trigger("echo", {"a": 1}).id, timeout=15).status == "COMPLETED"
        with pytest.raises(NotFound) as missing:
            client.trigger("fleet", {})
        assert "task 'fleet' is not defined in this environment; tasks/fleet.py failed to import: " \
               "SyntaxError" in str(missing.value)
        assert "(line 3)" in str(missing.value)

        core = fresh_dev.root / "tasks" / "core.py"  # broken while editing: echo keeps its old code
        good = core.read_text()
        core.write_text(good.replace("return payload\n", "return payload +\n", 1))
        wait_for(lambda: "Kept the code loaded before" in fresh_dev.output(), what="the kept generation")
        assert client.runs.poll(client.trigger("echo", {"a": 2}).id, timeout=15).output == {"a": 2}

        core.write_text(good)  # both fixed: a clean load takes over and names no module
        fleet.write_text(fleet_source)
        wait_for(lambda: any("Reloaded tasks" in line and "fleet" in line for line in fresh_dev.output().splitlines()),
                 what="the fixed reload")
        assert client.runs.poll(client.trigger("fleet", {}).id, timeout=15).status == "COMPLETED"
