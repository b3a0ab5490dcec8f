"""Server-sent events for `runs.subscribe` and `runs.stream`: the parsing, and what a
subscription does when its connection drops (it reconnects with `Last-Event-ID`, so it misses
nothing and sees nothing twice). The senders (conveyor/client/_async.py, _sync.py) read the
bytes; this module decides nothing about I/O.

    async for run in client.runs.subscribe(run_id): ...         # ends when the run ends
    async for run in client.runs.subscribe(tag="user-42"): ...   # until you stop
    async for chunk in client.runs.stream(run_id, "llm"): ...    # from the first chunk
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conveyor.client._calls import segment
from conveyor.errors import InvalidRequest

RECONNECT_AFTER = 0.5  # seconds before reconnecting a dropped subscription
MAX_RECONNECTS = 20  # in a row without an event in between; then the error is raised


@dataclass(slots=True)
class Event:
    event: str
    data: Any
    id: str | None = None


@dataclass
class SseParser:
    """Server-sent events from lines of text (the `text/event-stream` format)."""

    _event: str = "message"
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Event | None:
        """One line (without its end); the event it completes, if any."""
        if not line:
            if not self._data:
                self._event, self._id = "message", None
                return None
            event = Event(self._event, json.loads("\n".join(self._data)), self._id)
            self._event, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None  # a comment: the server keeping the line open
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from chunks of bytes (split anywhere)."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode()


@dataclass(frozen=True, slots=True)
class Subscription:
    """What to read: the path and query of the event stream, and the event that carries items."""

    path: str
    params: tuple[tuple[str, str], ...]
    item: str  # "run" or "chunk"


def run_subscription(run_id: str | None, tag: str | None, batch_id: str | None) -> Subscription:
    given = [
        name for name, value in (("run_id", run_id), ("tag", tag), ("batch_id", batch_id)) if value
    ]
    if len(given) != 1:
        raise InvalidRequest(
            "subscribe to one thing: a run id, tag=... or batch_id=..."
            + (f" (got {', '.join(given)})" if given else "")
        )
    if run_id:
        return Subscription(f"/api/v1/runs/{segment(run_id, 'run id')}/subscribe", (), "run")
    if tag:
        return Subscription("/api/v1/runs/subscribe", (("tag", tag),), "run")
    assert batch_id is not None
    return Subscription("/api/v1/runs/subscribe", (("batch_id", batch_id),), "run")


def stream_subscription(run_id: str, name: str) -> Subscription:
    path = f"/api/v1/runs/{segment(run_id, 'run id')}/streams/{segment(name, 'stream name')}"
    return Subscription(path, (), "chunk")
