"""The run engine: every run state change, each one transaction in the store.

Nothing outside this package writes run state. The engine owns the state machine
(statuses and their transitions, transitions.py), queues and concurrency, retries (the formula
in `conveyor/retries.py`, pure), and lifecycle hooks that must still run. It never imports user
task code.

`Engine` (facade.py) is the entry point: a small object over parts named like the client's
namespaces (`engine.runs`, `engine.tasks`, `engine.workers`, ...). Code outside this package
imports from here, never from the modules inside: the parts are reached through an Engine.
`Wakeups` turns the engine's events into asyncio wake-ups for the front ends' long polls and
live pages.
"""

from conveyor.engine.accounts import (
    TOKEN_PREFIX,
    Accounts,
    Caller,
    hash_secret,
    preview_slug,
)
from conveyor.engine.alerts import Outgoing
from conveyor.engine.auth import MAX_EXPIRY as MAX_TOKEN_EXPIRY
from conveyor.engine.auth import IssuedToken, PublicToken, looks_like_token
from conveyor.engine.environments import AUTH_CACHE_SECONDS, Environment, hash_key
from conveyor.engine.facade import Engine
from conveyor.engine.runs import RunPage
from conveyor.engine.tasks import BatchResult
from conveyor.engine.transitions import MAX_BATCH
from conveyor.engine.wakeups import Waiter, Wakeups, changes, stream_key

__all__ = [
    "AUTH_CACHE_SECONDS",
    "MAX_BATCH",
    "MAX_TOKEN_EXPIRY",
    "TOKEN_PREFIX",
    "Accounts",
    "BatchResult",
    "Caller",
    "Engine",
    "Environment",
    "IssuedToken",
    "Outgoing",
    "PublicToken",
    "RunPage",
    "Waiter",
    "Wakeups",
    "changes",
    "hash_key",
    "hash_secret",
    "looks_like_token",
    "preview_slug",
    "stream_key",
]
