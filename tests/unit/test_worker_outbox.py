"""The worker's outbox: a line the server refuses is dropped alone and never holds back results;
what could not be sent while the server was away is kept, once, and sent when it is back."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor.errors import InvalidRequest, StoreUnavailable
from conveyor.protocol import AttemptOutcome, LogEntry
from conveyor.worker.outbox import Outbox


class FakeLink:
    def __init__(self) -> None:
        self.away = False
        self.logs: list[LogEntry] = []
        self.outcomes: list[AttemptOutcome] = []
        self.hooks: list[tuple[str, str, int]] = []

    def _check(self) -> None:
        if self.away:
            raise StoreUnavailable("the database is away")

    async def append_logs(self, entries: list[LogEntry]) -> None:
        self._check()
        if any(e.message == "poison" for e in entries):
            raise InvalidRequest("a value of the request cannot be stored")
        self.logs.extend(entries)

    async def complete(self, worker_id: str, outcomes: list[AttemptOutcome]) -> None:
        self._check()
        self.outcomes.extend(outcomes)

    async def hook_done(self, run_id: str, hook: str, fence: int) -> None:
        self._check()
        self.hooks.append((run_id, hook, fence))


def line(run: str, seq: int, message: str = "ok") -> LogEntry:
    return LogEntry(run, 1, seq, 1.0, "info", message)


def outbox(link: FakeLink) -> tuple[Outbox, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    box = Outbox(
        link,
        "w1",
        link_failed=lambda exc: events.append(("link_failed", {})),  # type: ignore[arg-type]
        reporter=lambda event, data: events.append((event, data)),
    )
    return box, events


def test_a_refused_line_is_dropped_alone_and_the_outcome_goes_through() -> None:
    link = FakeLink()
    box, events = outbox(link)
    box.add_logs(
        [line("a", i) for i in range(7)]
        + [line("b", 1, "poison")]
        + [line("c", i) for i in range(5)]
    )
    box.add_outcome(AttemptOutcome("a", 1, "completed", output_json="1", fence=1))
    box.add_hook(("a", "on_success", 2))
    assert asyncio.run(box.flush())
    assert len(link.logs) == 12 and all(e.message == "ok" for e in link.logs)
    assert [o.run_id for o in link.outcomes] == ["a"] and link.hooks == [("a", "on_success", 2)]
    assert [e for e in events if e[0] == "dropped"] == [
        (
            "dropped",
            {"what": "log line", "run_id": "b", "error": "a value of the request cannot be stored"},
        )
    ]
    assert box.empty


def test_what_could_not_be_sent_is_kept_once_and_sent_when_the_server_is_back() -> None:
    link = FakeLink()
    box, events = outbox(link)
    link.away = True
    box.add_logs([line("a", 1), line("a", 2)])
    box.add_outcome(AttemptOutcome("a", 1, "completed", output_json="1", fence=3))
    assert not asyncio.run(box.flush())
    assert box.unacknowledged() == [("a", 3)]  # still ours to the engine: the heartbeat lists it
    assert not asyncio.run(box.flush())
    assert len(box.logs) == 2  # kept once, not once per failed flush
    link.away = False
    assert asyncio.run(box.flush())
    assert [e.seq for e in link.logs] == [1, 2] and [o.fence for o in link.outcomes] == [3]
    assert box.unacknowledged() == [] and ("link_failed", {}) in events
