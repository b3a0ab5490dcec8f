"""Put first on PYTHONPATH by `bench/run.py --conveyor-loop asyncio`: importing uvloop fails, so
`conveyor.eventloop.use_fast_event_loop()` falls back to asyncio's own event loop (what it does
wherever uvloop is not installed), in the dev process and in the executors it starts.

Why the option exists: see bench/RESULTS.md, "Conveyor problems seen", 1 (uvloop made the
supervisor/executor sockets non-blocking, and a full socket buffer killed executors; fixed since
by conveyor/worker/channel.py). It stays to compare the two loops.
"""

raise ImportError(
    "uvloop is hidden by bench/shims/asyncio_loop (bench/run.py --conveyor-loop asyncio)"
)
