"""The campaign's history: every start, tick, step, pause, end and hook of a task body is one
JSON line appended (O_APPEND, one write) to the file named by CAMPAIGN_HISTORY, with the run,
the attempt and its fence, the host, the process, and monotonic and wall time. The monotonic
clock is the machine's (every test host shares it; a skewed worker fakes only its wall clock),
so the checker orders lines of all hosts by it."""

import asyncio
import json
import os
import time
import uuid
from contextlib import asynccontextmanager

from conveyor.sdk.context import current_scope

TICK = 0.2  # a running body says it is alive this often
_fd = None


def fence() -> int:
    scope = current_scope()
    return scope.fence if scope is not None else 0


def record(kind, ctx=None, **fields):
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["CAMPAIGN_HISTORY"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    line = {
        "k": kind,
        "mono": time.monotonic(),
        "wall": time.time(),
        "host": os.environ.get("CAMPAIGN_HOST", "?"),
        "pid": os.getpid(),
    }
    if ctx is not None:
        line.update(run=ctx.run.id, task=ctx.task.id, att=ctx.attempt.number, fence=fence())
    line.update(fields)
    os.write(_fd, (json.dumps(line) + "\n").encode())


class Segment:
    """One execution of a body in one process, from its start to its end (or its death): it
    ticks while it runs, and pauses its ticks around durable waits (the run gives its slot back
    while it waits, and a long wait ends the process)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.id = uuid.uuid4().hex[:12]
        self._ticker = None

    async def __aenter__(self):
        record("start", self.ctx, seg=self.id)
        self._tick()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        self._untick()
        record(
            "end" if exc_type is None else "stop",
            self.ctx,
            seg=self.id,
            exc=None if exc_type is None else exc_type.__name__,
        )
        return False

    def _tick(self):
        async def tick():
            while True:
                await asyncio.sleep(TICK)
                record("tick", self.ctx, seg=self.id)

        self._ticker = asyncio.get_running_loop().create_task(tick())

    def _untick(self):
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    @asynccontextmanager
    async def paused(self, what):
        self._untick()
        record("pause", self.ctx, seg=self.id, what=what)
        yield
        record("resume", self.ctx, seg=self.id, what=what)
        self._tick()

    def step(self, name, seconds):
        """A step body: it records its start and end around its work."""

        async def body():
            record("step", self.ctx, seg=self.id, name=name)
            await asyncio.sleep(seconds)
            record("step-end", self.ctx, seg=self.id, name=name)
            return name

        return body


def hook(name):
    def on_hook(payload, *rest):
        ctx = rest[-1]
        record("hook", ctx, hook=name)

    return on_hook
