"""The worker: a supervisor that leases runs and pre-started executor processes that run them.

The supervisor never imports task code; executors do. An executor runs many async attempts
on one event loop (sync tasks in threads), reports outcomes, logs and in-run calls to the
supervisor over a pipe, and is killed when it overruns a deadline or its machine's memory.
"""
