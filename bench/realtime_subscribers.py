"""The subscribers of the realtime benchmark (bench/realtime.py), in a process of their own: one
server-sent-event connection per run, over raw asyncio sockets (HTTP/1.1, chunked), so the
client spends as little of the two cores as it can. For every event it records when it was
read (`time.time()` as the bytes arrived) beside what the event says:

- `run` events (GET /api/v1/runs/{id}/subscribe): the tick `i`, its `at` (the run's clock at
  `metadata.set`) and the event id (the snapshot's `updated_at`, when the engine committed it);
- `chunk` events (GET /api/v1/runs/{id}/streams/llm): the chunk's number and the send time
  written at its start.

    python bench/realtime_subscribers.py --url http://127.0.0.1:PORT --key KEY \
        --kind run|stream --ids ids.txt --out events.json

It prints `connected <n> <time>` once every subscription had its response headers (the parent
waits for that line), and writes the events when every subscription ended (`end` event) or at
`--deadline` (a wall-clock time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TICK = b'"tick":'
DECODER = json.JSONDecoder()
CHUNK = re.compile(rb'^"([0-9.]+) (\d+) ')


class Subscription:
    """One run's event stream: what it received and when."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.events: list[
            tuple[float, ...]
        ] = []  # run: (i, at, stamp, recv); chunk: (seq, at, recv)
        self.snapshots = 0  # `run` events, with or without a tick
        self.ended = False
        self.error: str | None = None
        self.headers_at: float | None = None


def parse_event(block: bytes, kind: str, recv: float, sub: Subscription) -> None:
    name = b""
    event_id = b""
    data = b""
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip()
        elif line.startswith(b"id:"):
            event_id = line[3:].strip()
        elif line.startswith(b"data:"):
            data = line[5:].strip()
    if name == b"end":
        sub.ended = True
    elif name == b"run" and kind == "run":
        sub.snapshots += 1
        where = data.find(TICK)
        if where >= 0:  # decode the tick alone, not the whole snapshot
            tick, _ = DECODER.raw_decode(data[where + len(TICK) :].decode())
            sub.events.append((tick["i"], tick["at"], float(event_id or 0), recv))
    elif name == b"chunk" and kind == "stream":
        found = CHUNK.match(data)
        if found:
            sub.events.append((int(found.group(2)), float(found.group(1)), recv))


async def follow(
    host: str, port: int, path: str, key: str, kind: str, sub: Subscription, gate: asyncio.Semaphore
) -> None:
    try:
        async with gate:  # opening thousands of connections at once overflows the listen backlog
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                sub.error = status.decode(errors="replace").strip()
                writer.close()
                return
            chunked = False
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                    chunked = True
            sub.headers_at = time.time()
        buffer = b""
        while True:
            if chunked:
                size_line = await reader.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                piece = (await reader.readexactly(size + 2))[:-2]
            else:
                piece = await reader.read(65536)
                if not piece:
                    break
            recv = time.time()
            buffer += piece
            *blocks, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
            for block in blocks:
                if block and not block.startswith(b":"):
                    parse_event(block, kind, recv, sub)
            if sub.ended:
                break
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        sub.error = f"{type(exc).__name__}: {exc}"


async def main_async(args: argparse.Namespace) -> None:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    ids = Path(args.ids).read_text().split()
    subs = [Subscription(run_id) for run_id in ids]
    gate = asyncio.Semaphore(args.connect_concurrency)
    paths = [
        f"/api/v1/runs/{s.run_id}/subscribe"
        if args.kind == "run"
        else f"/api/v1/runs/{s.run_id}/streams/llm"
        for s in subs
    ]
    tasks = [
        asyncio.create_task(follow(host, port, p, args.key, args.kind, s, gate))
        for p, s in zip(paths, subs, strict=True)
    ]
    connect_deadline = time.monotonic() + args.connect_timeout
    while time.monotonic() < connect_deadline:
        if all(s.headers_at is not None or s.error is not None for s in subs):
            break
        await asyncio.sleep(0.05)
    connected = sum(1 for s in subs if s.headers_at is not None)
    print(f"connected {connected} {time.time():.6f}", flush=True)
    left = max(0.0, args.deadline - time.time())
    _done, pending = await asyncio.wait(tasks, timeout=left)
    for task in pending:
        task.cancel()
    out: dict[str, Any] = {
        "kind": args.kind,
        "subscriptions": [
            {
                "run_id": s.run_id,
                "ended": s.ended,
                "error": s.error,
                "headers_at": s.headers_at,
                "snapshots": s.snapshots,
                "events": s.events,
            }
            for s in subs
        ],
    }
    Path(args.out).write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--kind", choices=["run", "stream"], required=True)
    parser.add_argument("--ids", required=True, help="a file of run ids, one a line")
    parser.add_argument("--out", required=True)
    parser.add_argument("--deadline", type=float, required=True, help="wall-clock time to stop")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
