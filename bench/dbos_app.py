"""The DBOS process of the durable workloads: one process that launches DBOS on a fresh system
database, runs one workload in its own workflows and writes what it measured. The harness
(dbos_side.py) starts it, samples its memory and CPU from outside, and stops it.

    python bench/dbos_app.py --workload fanout|limited|sleep|serve --database URL --dir DIR [--n N]
                             [--seconds S] [--poll P]

Handshake through files in DIR, so launching (migrations, recovery, the queue threads) is not
timed: the process writes `ready` once launched, waits for `go`, runs the workload, writes
`result.json`, then shuts DBOS down. `serve` (the postgres suite) registers the queue `bench`
and runs, as a worker, what a client (DBOSClient, dbos_queue_side.py) enqueues on it, until it is
stopped.

DBOS is a library: workflows run in the process that launched it and are started from it, so
unlike Conveyor and Celery there is no client process here; the trigger calls below are what an
application embedding DBOS makes. Workflows are async (`async def`), as Conveyor's tasks are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

LIMIT = 5  # concurrency of the queue `five`, as Conveyor's queue("five", concurrency_limit=5)
FIVE: Any = None  # the Queue, registered after launch (DBOS.register_queue persists it)


@DBOS.workflow()
async def noop_wf() -> None:
    return None


@DBOS.workflow()
async def stamp_wf() -> dict[str, float]:
    return {"started": time.time()}


@DBOS.workflow()
async def fan_parent(n: int) -> int:
    """Start `n` no-op child workflows (each start is journaled), then wait for all. The starts
    are issued together (asyncio.gather), the fastest of the ways tried (a loop of awaited
    starts was no faster on Postgres); DBOS has no batch start."""
    handles = await asyncio.gather(*(DBOS.start_workflow_async(noop_wf) for _ in range(n)))
    ok = 0
    for handle in handles:
        await handle.get_result()
        ok += 1
    return ok


@DBOS.workflow()
async def work_wf() -> dict[str, float]:
    started = time.time()
    await asyncio.sleep(0.1)
    return {"started": started, "ended": time.time()}


@DBOS.workflow()
async def limited_parent(n: int, poll: float) -> int:
    """Enqueue `n` children on the queue `five` (concurrency 5), then wait for all. A queued
    child's handle is a polling one: `get_result` reads the database every `poll` seconds."""
    handles = await asyncio.gather(*(FIVE.enqueue_async(work_wf) for _ in range(n)))
    ok = 0
    for handle in handles:
        await handle.get_result(polling_interval_sec=poll)
        ok += 1
    return ok


@DBOS.workflow()
async def sleeper(seconds: float) -> None:
    await DBOS.sleep_async(seconds)  # durable: the wake-up time is journaled, then asyncio.sleep


def _epoch(ms: int | None) -> float | None:
    return ms / 1000 if ms is not None else None


async def _statuses(name: str) -> list[dict[str, Any]]:
    rows = await DBOS.list_workflows_async(name=name, load_input=False, load_output=True)
    return [
        {
            "id": r.workflow_id,
            "status": r.status,
            "created_at": _epoch(r.created_at),
            "dequeued_at": _epoch(r.dequeued_at),
            "completed_at": _epoch(r.completed_at),
            "output": r.output if name == "work_wf" else None,
        }
        for r in rows
    ]


async def fanout(n: int) -> dict[str, Any]:
    t0 = time.time()
    handle = await DBOS.start_workflow_async(fan_parent, n)
    output = await handle.get_result()
    seen = time.time()
    return {
        "t0": t0,
        "seen": seen,
        "output": output,
        "parent": (await _statuses("fan_parent"))[0],
        "children": await _statuses("noop_wf"),
    }


async def limited(n: int, poll: float) -> dict[str, Any]:
    t0 = time.time()
    handle = await DBOS.start_workflow_async(limited_parent, n, poll)
    output = await handle.get_result()
    seen = time.time()
    return {
        "t0": t0,
        "seen": seen,
        "output": output,
        "parent": (await _statuses("limited_parent"))[0],
        "children": await _statuses("work_wf"),
    }


async def sleep(n: int, seconds: float) -> dict[str, Any]:
    t0 = time.time()
    handles = await asyncio.gather(*(DBOS.start_workflow_async(sleeper, seconds) for _ in range(n)))
    triggered = time.time()
    await asyncio.gather(*(h.get_result() for h in handles))
    seen = time.time()
    return {"t0": t0, "triggered": triggered, "seen": seen, "children": await _statuses("sleeper")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--workload", choices=["fanout", "limited", "sleep", "serve"], required=True
    )
    parser.add_argument(
        "--database", required=True, help="system database URL (postgresql:// or sqlite:///)"
    )
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--poll", type=float, default=1.0, help="queue polling interval and get_result polling (s)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": args.database,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    global FIVE
    if args.workload == "limited":
        FIVE = DBOS.register_queue("five", global_concurrency=LIMIT, polling_interval_sec=args.poll)
        # DBOS's queue manager looks for new queues every second and starts their thread
        time.sleep(1.5)
    if args.workload == "serve":
        DBOS.register_queue("bench", polling_interval_sec=args.poll)
        time.sleep(1.5)  # the queue manager picks new queues up every second
        (args.dir / "ready").write_text(str(time.time()))
        while True:  # a worker for the client's enqueues, until SIGTERM
            time.sleep(3600)
    (args.dir / "ready").write_text(str(time.time()))
    deadline = time.monotonic() + args.timeout
    while not (args.dir / "go").exists():
        if time.monotonic() > deadline:
            print("no go file: giving up", file=sys.stderr)
            DBOS.destroy()
            return 2
        time.sleep(0.005)
    if args.workload == "fanout":
        work = fanout(args.n)
    elif args.workload == "limited":
        work = limited(args.n, args.poll)
    else:
        work = sleep(args.n, args.seconds)
    result = asyncio.run(asyncio.wait_for(work, args.timeout))
    tmp = args.dir / "result.tmp"
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(args.dir / "result.json")
    DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
