"""Live parts of pages as server-sent events: a stream re-renders one part of a page whenever
something changed in the viewer's environment, and sends it only when its HTML changed.

    engine event for env X (any server, through the store) ─┐
    or POLL_SECONDS without one (a lease, a log line) ──────┴─▶ render ─▶ "event: <name>" if new

The wake-ups are the engine's events as its Wakeups (conveyor/engine/wakeups.py) hand them to
workers' long polls; a stream waits only on its own environment's, and renders only through
the viewer's environment, so it can show nothing of another. A stream of a logged-in viewer
checks every RECHECK_SECONDS that their session still holds (a revoked token ends it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from conveyor.dashboard.access import Viewer, access_of
from conveyor.engine import Wakeups, changes
from conveyor.errors import ConveyorError

POLL_SECONDS = 1.5
SETTLE_SECONDS = 0.15  # after a wake-up, let the burst of changes behind it land first
MIN_INTERVAL = 0.5  # a busy environment wakes streams all the time; render at most this often
KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 30.0


def sse(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n"


def stream(
    request: Request, viewer: Viewer, event: str, render: Callable[[], str]
) -> StreamingResponse:
    """An event stream of `render()` (blocking; run off the event loop) as event `event`."""
    wakeups: Wakeups = request.app.state.wakeups
    env_id = viewer.env_id

    async def events() -> AsyncIterator[str]:
        last = None
        sent_at = checked_at = time.monotonic()
        yield "retry: 2000\n\n"
        with wakeups.listen(
            env_id, changes(env_id)
        ) as waiter:  # before the first render: no change goes unseen
            while not wakeups.closed:
                rendered_at = time.monotonic()
                try:
                    html = await run_in_threadpool(render)
                except ConveyorError:
                    return  # the run, queue or environment is gone: nothing more to show
                now = time.monotonic()
                if html != last:
                    last, sent_at = html, now
                    yield sse(event, html)
                elif now - sent_at > KEEPALIVE_SECONDS:
                    sent_at = now
                    yield ": keep-alive\n\n"
                await waiter.wait(POLL_SECONDS)
                if await request.is_disconnected():
                    return
                await asyncio.sleep(
                    max(SETTLE_SECONDS, MIN_INTERVAL - (time.monotonic() - rendered_at))
                )
                if not viewer.local and now - checked_at > RECHECK_SECONDS:
                    checked_at = now
                    try:
                        again = await run_in_threadpool(access_of(request).viewer, request)
                    except Exception:
                        return
                    if again.scope is None or again.scope.env_id != env_id:
                        return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
