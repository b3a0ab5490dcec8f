"""The event loop every Conveyor process runs on: uvloop where it is installed.

uvloop roughly halves the event loop's own cost per request, per socket read and per
wake-up, which is most of a trigger's way to its start (HTTP in, a wake-up, a lease, a
message to an executor). Without it (Windows, or an install that left it out) asyncio's
own loop runs everything the same, only slower.
"""

from __future__ import annotations

import asyncio


def use_fast_event_loop() -> bool:
    """Make asyncio.run use uvloop if it can be imported; whether it did."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
