"""The run engine: every run state change, each one transaction in the store.

Nothing outside this package writes run state. The engine owns the state machine
(statuses and their transitions), queues and concurrency, retries (`policy`, pure), and
lifecycle hooks that must still run. It never imports user task code.

`conveyor.engine.engine.Engine` is the entry point; this package does not import it eagerly,
so task code can use the pure `policy` module without loading the store.
"""
