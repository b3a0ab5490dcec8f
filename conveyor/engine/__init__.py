"""The run engine: every run state change, each one transaction in the store.

Nothing outside this package writes run state. The engine owns the state machine
(statuses and their transitions), queues and concurrency, retries (the formula in `conveyor/retries.py`, pure), and
lifecycle hooks that must still run. It never imports user task code.

`conveyor.engine.engine.Engine` is the entry point; `wakeups.Wakeups` turns its events into
asyncio wake-ups for the front ends' long polls and live pages.
"""
