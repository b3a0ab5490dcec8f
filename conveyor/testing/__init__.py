"""`conveyor.testing`: test a project's tasks.

    from conveyor import testing

    result = await testing.run(my_task, {"n": 1}, mocks=[testing.mock(child, output=2)])

`run` (and `run_sync`) run a task in the test's process with its durable calls answered in
memory; `mock` replaces a child task; `complete_token` completes the tokens a run waits on. The
pytest plugin (conveyor/testing/plugin.py) gives the fixture `conveyor_platform`: a real platform
on a temporary SQLite. See docs/testing.md.
"""

from conveyor.testing.memory import JournalRecord, LogLine, Mock, RunStalled, TokenCompletion
from conveyor.testing.runner import RunResult, complete_token, mock, run, run_sync

__all__ = [
    "JournalRecord",
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
