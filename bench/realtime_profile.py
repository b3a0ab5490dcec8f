"""A `conveyor` command (dev or server) under cProfile, every thread of it, or with timings of
each stage a realtime update goes through, for bench/realtime.py.

    python bench/realtime_profile.py OUT.prof dev --port 3030 --quiet ...
    python bench/realtime_profile.py --summary OUT.prof          # the ranking of a saved profile
    python bench/realtime_profile.py --trace OUT.json dev --port 3030 --quiet ...
    python bench/realtime_profile.py --costs [RUNS]     # each step alone, on the engine

Each thread gets its own profiler timed by its own CPU clock (`time.thread_time`), so a thread
waiting (on the event loop's poll, on a lock, on the GIL) costs nothing and the profile adds up
to CPU seconds. The main thread (uvicorn, the event loop, the supervisor) is profiled from before
the command starts; every thread started later (the engine's `to_thread` calls, the HTTP
thread pool) from its first call. SIGUSR1 and SIGUSR2 mark the window to keep (bench/realtime.py
sends them at the start and the end of its measured window): the profiles of every thread are
read at both marks, and what was spent in between is saved as pstats to OUT (without the marks,
the whole life of the process, at exit). Executor processes are separate interpreters: not profiled.
cProfile slows the process several times, so time the same workload without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import cProfile
import io
import json
import marshal
import pstats
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

# (label, file ending, function): what each realtime path costs, cumulative over every thread
WATCHED = [
    ("metadata flush: engine transaction", "conveyor/engine/durable.py", "metadata"),
    ("stream chunks: engine transaction", "conveyor/engine/durable.py", "stream"),
    ("durable call (engine.durable.call)", "conveyor/engine/durable.py", "call"),
    ("durable calls over HTTP (server route)", "conveyor/server/api/workers.py", "call"),
    ("SSE: run_events generator", "conveyor/server/realtime.py", "run_events"),
    ("SSE: stream_events generator", "conveyor/server/realtime.py", "stream_events"),
    ("SSE read: engine.runs.get", "conveyor/engine/runs.py", "get"),
    ("SSE read: engine.runs.stream", "conveyor/engine/runs.py", "stream"),
    ("run_view (row -> Run)", "conveyor/engine/views.py", "run_view"),
    ("SSE: _snapshot (model_dump)", "conveyor/server/realtime.py", "_snapshot"),
    ("SSE: sse() (json.dumps)", "conveyor/server/realtime.py", "sse"),
    ("json.dumps (all callers)", "json/__init__.py", "dumps"),
    ("json.loads (all callers)", "json/__init__.py", "loads"),
    ("wakeups: _on_event (engine thread)", "conveyor/engine/wakeups.py", "_on_event"),
    ("wakeups: _wake (event loop)", "conveyor/engine/wakeups.py", "_wake"),
    ("events: emit", "conveyor/engine/events.py", "emit"),
    ("store publish", "conveyor/store", "publish"),
    ("Waiter.wait", "conveyor/engine/wakeups.py", "wait"),
    ("starlette StreamingResponse.stream_response", "starlette/responses.py", "stream_response"),
    ("anyio run_sync (thread pool hop)", "anyio/to_thread.py", "run_sync"),
    ("sqlite3 execute", "~", "<method 'execute' of 'sqlite3.Connection' objects>"),
    ("sqlite3 cursor execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("store: bind", "conveyor/store/queries.py", "bind"),
    ("supervisor: messages from executors", "conveyor/worker/process.py", "_on_readable"),
    ("engine tick", "conveyor/engine/ticker.py", "tick"),
    ("supervisor: _serve (a durable call, loop side)", "conveyor/worker/supervisor.py", "_serve"),
    ("asyncio.to_thread (loop side)", "asyncio/threads.py", "to_thread"),
    ("transitions.check_holder", "conveyor/engine/transitions.py", "check_holder"),
    ("serialization.json_problem", "conveyor/serialization.py", "json_problem"),
    ("executor channel: receive", "conveyor/worker/channel.py", "receive"),
    ("executor channel: send", "conveyor/worker/channel.py", "send"),
    ("uvicorn send", "uvicorn/protocols/http/httptools_impl.py", "send"),
    ("store read() (BEGIN/ROLLBACK)", "conveyor/store/sqlite.py", "read"),
    ("store transaction()", "conveyor/store/sqlite.py", "transaction"),
]


Stats = dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]]


def _group(thread: str) -> str:
    """Threads of one pool under one name: asyncio_3 -> asyncio, Thread-5 (x) -> Thread (x)."""
    return re.sub(r"[-_ ]\d+", "", thread) or thread


def _sum(one: Stats, other: Stats) -> Stats:
    merged = dict(one)
    for func, (cc, nc, tt, ct, callers) in other.items():
        if func in merged:
            cc0, nc0, tt0, ct0, callers0 = merged[func]
            both = dict(callers0)
            for caller, counts in callers.items():
                old = both.get(caller)
                both[caller] = (
                    tuple(a + b for a, b in zip(old, counts, strict=True)) if old else counts
                )
            merged[func] = (cc0 + cc, nc0 + nc, tt0 + tt, ct0 + ct, both)
        else:
            merged[func] = (cc, nc, tt, ct, dict(callers))
    return merged


def _merged(profiles: list[cProfile.Profile]) -> Stats:
    """The stats of these profilers so far, summed, without stopping any."""
    merged: Stats = {}
    for profile in profiles:
        profile.snapshot_stats()  # type: ignore[attr-defined]
        merged = _sum(merged, profile.stats)  # type: ignore[attr-defined]
    return merged


def _minus(end: Stats, start: Stats) -> Stats:
    """What was spent between two snapshots."""
    out: Stats = {}
    for func, (cc, nc, tt, ct, callers) in end.items():
        if func not in start:
            out[func] = (cc, nc, tt, ct, callers)
            continue
        cc0, nc0, tt0, ct0, callers0 = start[func]
        if nc == nc0:
            continue
        diff = {}
        for caller, counts in callers.items():
            before = callers0.get(caller)
            left = tuple(a - b for a, b in zip(counts, before, strict=True)) if before else counts
            if left[0]:
                diff[caller] = left
        out[func] = (cc - cc0, nc - nc0, tt - tt0, ct - ct0, diff)
    return out


def run(out: Path, argv: list[str]) -> None:
    """Profile every thread; SIGUSR1 marks the start of the window to keep, SIGUSR2 its end
    (the profile of the window is written then); without them, the whole life is written at
    exit."""
    profiles: list[cProfile.Profile] = []
    names: list[str] = []  # the thread of each profile
    lock = threading.Lock()
    marks: dict[str, Any] = {}

    def start_thread(frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
            names.append(threading.current_thread().name)
        profile.enable()  # replaces this hook for the thread

    def snapshot() -> dict[str, Stats]:
        """The stats so far of each group of threads (pool threads named alike together)."""
        with lock:
            pairs = list(zip(names, profiles, strict=True))
        groups: dict[str, list[cProfile.Profile]] = {}
        for name, profile in pairs:
            groups.setdefault(_group(name), []).append(profile)
        return {group: _merged(found) for group, found in groups.items()}

    def window_start(signum: int, frame: Any) -> None:
        marks["start"] = snapshot()

    def window_end(signum: int, frame: Any) -> None:
        if "start" not in marks:
            return
        start = marks.pop("start")
        window = {g: _minus(stats, start.get(g, {})) for g, stats in snapshot().items()}
        total: Stats = {}
        spent: dict[str, float] = {}
        for group, stats in window.items():
            spent[group] = sum(tt for _cc, _nc, tt, _ct, _callers in stats.values())
            with open(out.with_name(f"{out.stem}.{group.replace(' ', '_')}.prof"), "wb") as f:
                marshal.dump(stats, f)
            total = _sum(total, stats)
        with open(out, "wb") as file:
            marshal.dump(total, file)
        out.with_suffix(".threads.json").write_text(json.dumps(spent))
        marks["written"] = {}

    from conveyor.cli.main import main

    signal.signal(signal.SIGUSR1, window_start)
    signal.signal(signal.SIGUSR2, window_end)
    threading.setprofile(start_thread)
    main_profile = cProfile.Profile(time.thread_time)
    with lock:
        profiles.append(main_profile)
        names.append("MainThread")
    main_profile.enable()
    try:
        main(args=argv, prog_name="conveyor")
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        if "written" not in marks:
            total: Stats = {}
            for stats in snapshot().values():
                total = _sum(total, stats)
            with open(out, "wb") as file:
                marshal.dump(total, file)


def trace(out: Path, argv: list[str]) -> None:
    """Run the command with its realtime stages timed; write {stage: [[time, ms], ...]} to OUT.

    Stages (ms): `arrive` the newest update's age when its flush reaches the platform (dev: the
    supervisor's link; server: the app has the worker's HTTP request; it includes the run's
    FLUSH_AFTER), `queued` from there to the engine call starting in a thread (dev:
    `asyncio.to_thread`; server: the body, auth, the worker check and the thread pool),
    `lock_wait` / `lock_held` the store's write transaction of a flush (SQLite: the
    process-wide write lock; PostgreSQL: a pooled connection), `flush` the whole engine call,
    `read_wait` / `read` an SSE handler's `run_in_threadpool` read (waiting for a thread of the
    pool, then running), `commit_to_yield` the snapshot's updated_at to the handler yielding
    its event, `loop_lag` a callback scheduled from another thread every 10 ms until it runs on
    the event loop; `threadpool_busy` anyio's borrowed tokens, sampled every 100 ms.
    In a `conveyor worker`: `worker_arrive` the newest update's age when the worker's link
    sends its flush, `http_call` the durable call's round trip to the server, and `loop_lag`
    of the worker's event loop."""
    import anyio.to_thread

    import conveyor.server.realtime as realtime
    from conveyor.engine.durable import Durable
    from conveyor.store.postgres import PostgresStore
    from conveyor.store.sqlite import SqliteStore

    samples: dict[str, list[tuple[float, float]]] = {}
    loop_seen: list[asyncio.AbstractEventLoop] = []  # the loop the probe watches, once known
    arrived: contextvars.ContextVar[float] = contextvars.ContextVar("arrived", default=0.0)
    in_flush: contextvars.ContextVar[bool] = contextvars.ContextVar("in_flush", default=False)

    def note(stage: str, ms: float) -> None:
        samples.setdefault(stage, []).append((time.time(), ms))

    def newest_at(values: list[Any]) -> float:
        found = 0.0
        for value in values:
            if isinstance(value, dict) and "at" in value:
                found = max(found, float(value["at"]))
            elif isinstance(value, str) and value[:1].isdigit():
                with contextlib.suppress(ValueError):
                    found = max(found, float(value.split(" ", 1)[0]))
        return found

    def timed_call(original: Any) -> Any:
        def call(self: Any, env_id: str, run_id: str, call: Any, **kw: Any) -> Any:
            started = time.time()
            came = arrived.get() or started
            ops = getattr(call, "ops", None)
            values = [op.value for op in ops] if ops else list(getattr(call, "chunks", []) or [])
            at = newest_at(values)
            if at:
                note("arrive", (came - at) * 1000)
                note("queued", (started - came) * 1000)
            token = in_flush.set(True)
            try:
                return original(self, env_id, run_id, call, **kw)
            finally:
                in_flush.reset(token)
                if at:
                    note("flush", (time.time() - started) * 1000)

        return call

    Durable.call = timed_call(Durable.call)  # type: ignore[method-assign]

    with contextlib.suppress(ImportError):  # dev: the supervisor's calls, in the same process
        from conveyor.platform.link import LocalLink

        original_link_call = LocalLink.call

        async def link_call(self: Any, run_id: str, fence: int, call: Any) -> Any:
            token = arrived.set(time.time())
            try:
                return await original_link_call(self, run_id, fence, call)
            finally:
                arrived.reset(token)

        LocalLink.call = link_call  # type: ignore[method-assign]

    import fastapi

    original_app = fastapi.FastAPI.__call__

    async def app_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        # server: a remote worker's durable call, from the moment the app has its request
        if scope.get("type") == "http" and str(scope.get("path", "")).endswith("/calls"):
            token = arrived.set(time.time())
            try:
                await original_app(self, scope, receive, send)
            finally:
                arrived.reset(token)
        else:
            await original_app(self, scope, receive, send)

    fastapi.FastAPI.__call__ = app_call  # type: ignore[method-assign]

    from conveyor.worker.link import HttpLink

    original_http_call = HttpLink.call

    async def http_call(self: Any, run_id: str, fence: int, call: Any) -> Any:
        if not loop_seen:  # the worker's event loop: probe it too
            loop_seen.append(asyncio.get_running_loop())
        started = time.time()
        ops = getattr(call, "ops", None)
        values = [op.value for op in ops] if ops else list(getattr(call, "chunks", []) or [])
        at = newest_at(values)
        if at:
            note("worker_arrive", (started - at) * 1000)
        try:
            return await original_http_call(self, run_id, fence, call)
        finally:
            if at:
                note("http_call", (time.time() - started) * 1000)

    HttpLink.call = http_call  # type: ignore[method-assign]

    for store in (SqliteStore, PostgresStore):
        original_tx = store.transaction

        def make(original_tx: Any, store: Any) -> Any:
            @contextlib.contextmanager
            def transaction(self: Any) -> Any:
                if not in_flush.get():
                    with original_tx(self) as tx:
                        yield tx
                    return
                t0 = time.perf_counter()
                lock = getattr(self, "_write_lock", None)
                with lock if lock is not None else contextlib.nullcontext():
                    t1 = time.perf_counter()
                    with original_tx(self) as tx:
                        if lock is None:  # PostgreSQL: the pool's connection is the wait
                            t1 = time.perf_counter()
                        yield tx
                    t2 = time.perf_counter()
                note("lock_wait", (t1 - t0) * 1000)
                note("lock_held", (t2 - t1) * 1000)

            return transaction

        store.transaction = make(original_tx, store)  # type: ignore[method-assign]

    original_pool = realtime.run_in_threadpool

    async def run_in_threadpool(func: Any, *args: Any, **kwargs: Any) -> Any:
        asked = time.perf_counter()
        ran: list[float] = []

        def timed() -> Any:
            ran.append(time.perf_counter())
            try:
                return func(*args, **kwargs)
            finally:
                ran.append(time.perf_counter())

        try:
            return await original_pool(timed)
        finally:
            if len(ran) == 2:
                note("read_wait", (ran[0] - asked) * 1000)
                note("read", (ran[1] - ran[0]) * 1000)

    realtime.run_in_threadpool = run_in_threadpool  # type: ignore[assignment]
    original_sse = realtime.sse

    def sse(event: str, data: Any, event_id: str | None = None) -> str:
        if event == "run" and event_id:
            with contextlib.suppress(ValueError):
                note("commit_to_yield", (time.time() - float(event_id)) * 1000)
        return original_sse(event, data, event_id)

    realtime.sse = sse  # type: ignore[assignment]

    stop = threading.Event()

    def probe() -> None:  # from a thread of its own: how late the event loop runs a callback
        while not stop.wait(0.01):
            if not loop_seen:
                continue
            loop = loop_seen[0]
            sent = time.perf_counter()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    lambda sent=sent: note("loop_lag", (time.perf_counter() - sent) * 1000)
                )

    async def gauges() -> None:
        while True:
            limiter = anyio.to_thread.current_default_thread_limiter()
            note("threadpool_busy", float(limiter.borrowed_tokens))
            await asyncio.sleep(0.1)

    original_sse_route = realtime.run_events

    async def run_events(*args: Any, **kwargs: Any) -> Any:
        if not loop_seen:
            loop_seen.append(asyncio.get_running_loop())
            asyncio.get_running_loop().create_task(gauges())
        async for item in original_sse_route(*args, **kwargs):
            yield item

    original_stream_route = realtime.stream_events

    async def stream_events(*args: Any, **kwargs: Any) -> Any:
        if not loop_seen:
            loop_seen.append(asyncio.get_running_loop())
            asyncio.get_running_loop().create_task(gauges())
        async for item in original_stream_route(*args, **kwargs):
            yield item

    import conveyor.server.api.realtime as routes

    routes.run_events = run_events  # type: ignore[assignment]
    routes.stream_events = stream_events  # type: ignore[assignment]
    threading.Thread(target=probe, name="bench-loop-probe", daemon=True).start()

    from conveyor.cli.main import main

    try:
        main(args=argv, prog_name="conveyor")
    finally:
        stop.set()
        out.write_text(json.dumps(samples))


def costs(runs: int = 1000, repeat: int = 3000) -> str:
    """What each realtime step costs alone, one thread, no contention: the engine on a fresh
    SQLite file holding `runs` executing runs (what `conveyor dev` holds in this benchmark), and
    the thread hops an SSE read and a durable call take. Microseconds per call, wall clock (one
    thread, nothing else running: close to its CPU)."""
    import tempfile

    import anyio.to_thread
    import uvloop
    from fastapi.concurrency import run_in_threadpool

    from conveyor.engine import Engine
    from conveyor.models import QueueSpec, RetryPolicy, TaskDefinition, TriggerOptions
    from conveyor.protocol import MetadataCall, MetadataOp, StreamCall
    from conveyor.server.realtime import _snapshot, _stamp, sse
    from conveyor.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="conveyor-realtime-costs-"))
    store = open_store(str(folder / "dev.db"))
    store.migrate()
    engine = Engine(store)
    env = engine.environments.ensure("bench", "dev", "dev")
    task = TaskDefinition(
        id="ticker", queue=QueueSpec(name="task/ticker"), retry=RetryPolicy(max_attempts=1)
    )
    engine.workers.register(env.id, "wrk_bench", "bench", [task])
    engine.tasks.batch_trigger(env.id, [("ticker", {}, TriggerOptions())] * runs)
    fences: dict[str, int] = {}
    while len(fences) < runs:
        reply = engine.workers.lease(env.id, "wrk_bench", runs)
        if not reply.attempts:
            break
        fences |= {a.run_id: a.fence for a in reply.attempts}
    ids = list(fences)
    seq = dict.fromkeys(ids, 0)
    lines = [f"one thread, SQLite, {len(ids)} executing runs; microseconds per call"]

    def timed(label: str, fn: Any, n: int = repeat) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(n):
            fn(k)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        lines.append(f"  {wall / n * 1e6:8.1f} wall {cpu / n * 1e6:8.1f} CPU  {label}")

    def flush(k: int, ops: int = 1) -> None:
        run_id = ids[k % len(ids)]
        batch = []
        for _ in range(ops):
            seq[run_id] += 1
            batch.append(MetadataOp(seq[run_id], "self", "set", "tick", {"i": k, "at": 1.0}))
        engine.durable.call(
            env.id, run_id, MetadataCall(batch), worker_id="wrk_bench", fence=fences[run_id]
        )

    timed("metadata flush, 1 op: engine.durable.call(MetadataCall)", flush)
    timed(
        "metadata flush, 50 ops (a run whose flushes lag 5 s)",
        lambda k: flush(k, 50),
        repeat // 10,
    )
    timed("SSE read: engine.runs.get", lambda k: engine.runs.get(env.id, ids[k % len(ids)]))
    run = engine.runs.get(env.id, ids[0])

    def event(k: int) -> None:
        body = _snapshot(run)
        json.dumps(body, sort_keys=True)  # what run_events compares with the last event sent
        sse("run", body, repr(_stamp(run)))

    timed("SSE event: _snapshot + json.dumps(sort_keys) + sse() (json.dumps again)", event)
    chunk = "1764390000.123456 42 the of and to"
    starts = dict.fromkeys(ids, 0)

    def write(k: int) -> None:
        run_id = ids[k % len(ids)]
        call = StreamCall("llm", starts[run_id], [chunk, chunk])
        engine.durable.call(env.id, run_id, call, worker_id="wrk_bench", fence=fences[run_id])
        starts[run_id] += 2

    timed("stream write, 2 chunks: engine.durable.call(StreamCall)", write)
    timed(
        "stream read: engine.runs.stream (the last 2 chunks)",
        lambda k: engine.runs.stream(
            env.id, ids[k % len(ids)], "llm", after=starts[ids[k % len(ids)]] - 3
        ),
    )

    async def hops() -> None:
        anyio.to_thread.current_default_thread_limiter()
        for label, hop in (
            ("thread hop: run_in_threadpool (SSE reads, sync routes)", run_in_threadpool),
            ("thread hop: asyncio.to_thread (the supervisor's durable calls)", asyncio.to_thread),
        ):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(repeat):
                await hop(int)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            lines.append(
                f"  {wall / repeat * 1e6:8.1f} wall {cpu / repeat * 1e6:8.1f} CPU  {label}"
            )

    uvloop.run(hops())
    store.close()
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return "\n".join(lines)


def summary(path: Path, top: int = 30) -> str:
    """Top functions by own CPU time, and the cumulative CPU time of each realtime path."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    lines = [f"profile {path}: {total:.1f} CPU seconds over every profiled thread"]
    threads = path.with_suffix(".threads.json")
    if threads.exists():
        lines.append("by thread (CPU seconds):")
        for name, seconds in sorted(json.loads(threads.read_text()).items(), key=lambda x: -x[1]):
            if seconds >= 0.005:
                lines.append(f"  {seconds:7.2f}  {name}")
    lines.append("")
    lines.append("cumulative CPU by path (a function's time includes what it calls):")
    lines.append(f"{'seconds':>9} {'share':>6} {'calls':>9}  path")
    for label, ending, name in WATCHED:
        cum = 0.0
        calls = 0
        for (file, _line, func), (_cc, nc, _tt, ct, _callers) in raw.items():
            if file.endswith(ending) or (ending == "conveyor/store" and "conveyor/store" in file):
                if name and func != name:
                    continue
                cum += ct
                calls += nc
        if calls:
            lines.append(f"{cum:9.2f} {cum / total:6.1%} {calls:9d}  {label}")
    lines.append("")
    for group_file in sorted(path.parent.glob(f"{path.stem}.*.prof")):
        group = group_file.stem.removeprefix(path.stem + ".")
        buffer = io.StringIO()
        pstats.Stats(str(group_file), stream=buffer).sort_stats("tottime").print_stats(12)
        lines.append(f"thread {group}: top 12 by own CPU time:")
        lines += [line for line in buffer.getvalue().splitlines() if line.strip()][3:]
        lines.append("")
    buffer = io.StringIO()
    pstats.Stats(str(path), stream=buffer).sort_stats("tottime").print_stats(top)
    lines.append(f"top {top} by own CPU time:")
    lines += [line for line in buffer.getvalue().splitlines() if line.strip()][3:]
    buffer = io.StringIO()
    pstats.Stats(str(path), stream=buffer).sort_stats("cumulative").print_stats(top)
    lines.append("")
    lines.append(f"top {top} by cumulative CPU time:")
    lines += [line for line in buffer.getvalue().splitlines() if line.strip()][3:]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        print(summary(Path(sys.argv[2])))
    elif sys.argv[1:2] == ["--costs"]:
        print(costs(int(sys.argv[2]) if len(sys.argv) > 2 else 1000))
    elif sys.argv[1:2] == ["--trace"]:
        trace(Path(sys.argv[2]), sys.argv[3:])
    else:
        run(Path(sys.argv[1]), sys.argv[2:])
