"""`conveyor.testing`: test a project's tasks.

    from conveyor import testing

    result = await testing.run(my_task, {"n": 1}, mocks=[testing.mock(child, output=2)])

`run` (and `run_sync`) run a task in the test's process with its durable calls answered in
memory; `mock` replaces a child task; `complete_token` completes the tokens a run waits on. The
pytest plugin (conveyor/testing/plugin.py) gives the fixture `conveyor_platform`: a real platform
on a temporary SQLite, in the test's process (local.py). `conveyor.testing.platform` starts
real platforms in subprocesses (`conveyor dev`, or a server and workers) for end-to-end tests.
See docs/testing.md.

The names load on first use: pytest loads the plugin in every session, and a session that does
not use the kit should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.testing.local import LocalPlatform
    from conveyor.testing.records import (
        JournalRecord,
        LogLine,
        Mock,
        RunStalled,
        TokenCompletion,
    )
    from conveyor.testing.runner import RunResult, complete_token, mock, run, run_sync

_WHERE = {
    "JournalRecord": "records",
    "LocalPlatform": "local",
    "LogLine": "records",
    "Mock": "records",
    "RunResult": "runner",
    "RunStalled": "records",
    "TokenCompletion": "records",
    "complete_token": "runner",
    "mock": "runner",
    "run": "runner",
    "run_sync": "runner",
}

__all__ = [
    "JournalRecord",
    "LocalPlatform",
    "LogLine",
    "Mock",
    "RunResult",
    "RunStalled",
    "TokenCompletion",
    "complete_token",
    "mock",
    "run",
    "run_sync",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"conveyor.testing.{module}"), name)
    globals()[name] = value
    return value
