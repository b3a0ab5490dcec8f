"""Live subscriptions as server-sent events: a run, the runs of a tag or a batch, a run's stream.

    GET /api/v1/runs/{id}/subscribe                 event `run` at each change; `end` when it ends
    GET /api/v1/runs/subscribe?tag=... | ?batch_id=...   event `run` per changed run; a batch ends
    GET /api/v1/runs/{id}/streams/{name}            event `chunk` per chunk from the first; `end`

Each event carries an `id`, so a client that reconnects with `Last-Event-ID` misses nothing and
sees nothing twice: for runs the snapshot's `updated_at`, for a stream the chunk's number.

The app's wake-ups (conveyor/engine/wakeups.py) wake the subscribers of this process on the
engine's events ("changed", "stream", "available"), which come from every server on the same
database (conveyor/engine/events.py);
a subscriber also looks again every FALLBACK seconds, so a change no event named (a run taken
back by the ticker, say) is seen within that time. A snapshot is read from the store once per
wake-up and sent only if it differs from the last one sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from fastapi.concurrency import run_in_threadpool

from conveyor.engine import Engine, Waiter, Wakeups, changes, stream_key
from conveyor.models import Run

FALLBACK = 1.0  # seconds between looks when no event came
KEEPALIVE = 15.0  # seconds between comments that keep an idle connection open
OVERLAP = 2.0  # seconds a tag or batch subscriber looks back (commits land out of order)
PAGE = 500
STREAM_PAGE = 1000  # chunks read at once (engine.runs.stream's default)


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event."""
    return sse_json(event, json.dumps(data, separators=(",", ":")), event_id)


def sse_json(event: str, text: str, event_id: str | None = None) -> str:
    """One server-sent event whose data is JSON text already (one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n"


async def _pause(waiter: Waiter, idle: list[float]) -> str | None:
    """Wait for a wake-up or FALLBACK; a keep-alive comment when the line was quiet long."""
    await waiter.wait(FALLBACK)
    loop = asyncio.get_running_loop()
    if loop.time() - idle[0] >= KEEPALIVE:
        idle[0] = loop.time()
        return ": keep-alive\n\n"
    return None


def _stamp(run: Run) -> float:
    moment = run.updated_at or run.created_at
    return moment.timestamp()


_NOT_IN_SNAPSHOTS = {"attempt_list", "waiting_on"}


def _snapshot(run: Run) -> str:
    """A run as its subscribers get it: the JSON of runs.retrieve but its attempts and waits."""
    return run.model_dump_json(exclude=_NOT_IN_SNAPSHOTS)


class RunFeed:
    """The runs this server's subscribers watch, read for all of them at once: when the engine
    says runs changed, one read of those runs (not one per subscriber); and every FALLBACK
    seconds one read of when each watched run last changed, then one read of those that did (a
    change no event named). Each subscriber gets the latest snapshot of its run. One per app."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[RunWatch]] = {}
        self._marked: set[str] = set()
        self._stamps: dict[str, float] = {}
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        engine.events.subscribe(self._on_event)

    def watch(self, first: Run) -> RunWatch:
        self._loop = loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._woken = asyncio.Event()
            self._task = loop.create_task(self._feed())
        watch = RunWatch(self, first)
        watch.closed = self.closed  # a server stopping answers with the snapshot it has
        self._watchers.setdefault(first.id, set()).add(watch)
        self._stamps.setdefault(first.id, _stamp(first))
        return watch

    def forget(self, watch: RunWatch) -> None:
        watching = self._watchers.get(watch.run_id)
        if watching is not None:
            watching.discard(watch)
            if not watching:
                del self._watchers[watch.run_id]
                self._stamps.pop(watch.run_id, None)

    def close(self) -> None:
        """The server stops: every run subscription ends, and new ones end at once."""
        self.closed = True
        for watching in list(self._watchers.values()):
            for watch in list(watching):
                watch.closed = True
                watch.woken.set()

    def _on_event(self, event: str, env_id: str, ids: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not self._watchers:
            return
        if event == "changed" and ids:
            changed = ids.split(",")
        elif env_id == "*":  # the database connection was lost: anything may have changed
            changed = ["*"]
        else:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._mark, changed)

    def _mark(self, ids: list[str]) -> None:
        if ids == ["*"]:
            self._marked |= set(self._watchers)
        else:
            self._marked |= {i for i in ids if i in self._watchers}
        if self._marked:
            self._woken.set()

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        swept = loop.time()
        while self._watchers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(0.0, swept + FALLBACK - loop.time()))
            self._woken.clear()
            try:
                if loop.time() - swept >= FALLBACK:
                    swept = loop.time()
                    watched = list(self._watchers)
                    stamps = await run_in_threadpool(self._engine.runs.stamps, watched)
                    self._marked |= {
                        i for i in watched if stamps.get(i, 0.0) > self._stamps.get(i, 0.0)
                    }
                marked, self._marked = list(self._marked), set()
                for start in range(0, len(marked), PAGE):
                    runs = await run_in_threadpool(
                        self._engine.runs.many, marked[start : start + PAGE]
                    )
                    for run in runs:
                        self._stamps[run.id] = max(self._stamps.get(run.id, 0.0), _stamp(run))
                        for watch in self._watchers.get(run.id, ()):
                            watch.latest = run
                            watch.woken.set()
            except Exception:  # the database away for a moment: the next sweep reads again
                await asyncio.sleep(FALLBACK)


class RunWatch:
    """One subscriber's view of its run: the latest snapshot the feed read."""

    def __init__(self, feed: RunFeed, first: Run) -> None:
        self.run_id = first.id
        self.latest = first
        self.woken = asyncio.Event()
        self.closed = False
        self._feed = feed

    def __enter__(self) -> RunWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._feed.forget(self)


async def run_events(feed: RunFeed, first: Run, last_event_id: str | None) -> AsyncIterator[str]:
    """Snapshots of one run at each change (from `first`, read before the response started),
    then `end` once it has ended."""
    last_id = _float(last_event_id)
    sent: float | None = None
    loop = asyncio.get_running_loop()
    idle = loop.time()
    with feed.watch(first) as watch:
        while True:
            run = watch.latest
            stamp = _stamp(run)
            # a snapshot newer than the last one sent; after a resume, newer than the client's
            if (sent is None or stamp > sent) and (last_id is None or stamp > last_id):
                sent = stamp
                idle = loop.time()
                yield sse_json("run", _snapshot(run), repr(stamp))
            if run.status.is_final:
                yield sse("end", {"id": run.id, "status": run.status.value})
                return
            if watch.closed:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):  # no task per wait, as wait_for makes
                    await watch.woken.wait()
            watch.woken.clear()
            if loop.time() - idle >= KEEPALIVE:
                idle = loop.time()
                yield ": keep-alive\n\n"


async def runs_events(
    wakeups: Wakeups,
    engine: Engine,
    env_id: str,
    last_event_id: str | None,
    *,
    tag: str | None = None,
    batch_id: str | None = None,
    batch_done: Callable[[], bool] | None = None,
) -> AsyncIterator[str]:
    """Snapshots of the runs of a tag or a batch as they change (every run first); a batch's
    subscription ends once every run of it has ended."""
    since = _float(last_event_id) or 0.0
    seen: dict[str, float] = {}  # run -> stamp sent, within the look-back
    idle = [asyncio.get_running_loop().time()]
    with wakeups.listen(changes(env_id)) as waiter:
        while True:
            # read before the changes: once every run has ended, this pass sends their last state
            done = batch_done is not None and await run_in_threadpool(batch_done)
            look_from = max(0.0, since - OVERLAP) if seen or last_event_id else 0.0
            while True:
                runs = await run_in_threadpool(
                    partial(engine.runs.changed_since, tag=tag, batch_id=batch_id),
                    env_id,
                    look_from,
                )
                for run in runs:
                    stamp = _stamp(run)
                    if seen.get(run.id, -1.0) >= stamp or (last_event_id and stamp <= since):
                        continue
                    seen[run.id] = stamp
                    since = max(since, stamp)
                    idle[0] = asyncio.get_running_loop().time()
                    yield sse_json("run", _snapshot(run), repr(since))
                if len(runs) < PAGE:
                    break
                look_from = _stamp(runs[-1])
            seen = {k: v for k, v in seen.items() if v >= since - OVERLAP}
            if done:
                yield sse("end", {"batch_id": batch_id})
                return
            if wakeups.closed:
                return
            beat = await _pause(waiter, idle)
            if beat:
                yield beat


async def stream_events(
    wakeups: Wakeups, engine: Engine, env_id: str, run_id: str, name: str, last_event_id: str | None
) -> AsyncIterator[str]:
    """The chunks of a run's stream from the first (or after `Last-Event-ID`), then live; `end`
    when the stream ends, or when the run ended without ending it."""
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else -1
    idle = [asyncio.get_running_loop().time()]
    with wakeups.listen(stream_key(run_id), run_id) as waiter:
        while True:
            chunks, ended = await run_in_threadpool(
                partial(engine.runs.stream, after=after), env_id, run_id, name
            )
            for seq, value in chunks:
                after = seq
                idle[0] = asyncio.get_running_loop().time()
                yield sse("chunk", value, str(seq))
            if ended:
                yield sse("end", {"run_id": run_id, "stream": name, "chunks": after + 1})
                return
            if len(chunks) >= STREAM_PAGE:  # a late reader catching up: the next page at once
                continue
            if not chunks:
                run = await run_in_threadpool(engine.runs.get, env_id, run_id)
                if run.status.is_final:
                    more, ended = await run_in_threadpool(
                        partial(engine.runs.stream, after=after), env_id, run_id, name
                    )
                    if not more:
                        yield sse("end", {"run_id": run_id, "stream": name, "chunks": after + 1})
                        return
                    continue
            if wakeups.closed:
                return
            beat = await _pause(waiter, idle)
            if beat:
                yield beat


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
