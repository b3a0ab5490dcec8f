"""The run engine: every run state change, each one transaction in the store.

Nothing outside this package writes run state. The engine owns the state machine
(statuses and their transitions), queues and concurrency, retries, and lifecycle hooks
that must still run. It never imports user task code.
"""

from conveyor.engine.engine import Engine

__all__ = ["Engine"]
