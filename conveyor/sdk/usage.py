"""`usage.current()`: the compute the running run has used so far (docs/metrics.md#usage).

    from conveyor import usage

    spent = usage.current()
    if spent.compute_seconds > 600:
        logger.warn("this run is getting expensive", seconds=spent.compute_seconds)

Compute seconds are the time the run's attempts held a slot: from each start or resume to
its end or suspension, so a wait that suspends the run costs nothing. The platform records
the same figure per attempt when it ends (`GET /api/v1/usage`, the dashboard's Usage page).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from conveyor.errors import ConveyorError
from conveyor.sdk.context import current_scope


@dataclass(frozen=True, slots=True)
class RunUsage:
    """What a run has used so far."""

    compute_seconds: float  # every attempt's, this one's included
    attempt_compute_seconds: float  # this attempt's
    machine: str  # the machine preset it runs on


class _Usage:
    """`usage` (see the module docstring)."""

    def current(self) -> RunUsage:
        """The compute the run calling it has used so far; ConveyorError outside a run."""
        scope = current_scope()
        if scope is None or scope.durable is None:
            raise ConveyorError("usage.current() is called inside a run (a task's code)")
        attempt = scope.attempt_compute_before + (time.monotonic() - scope.segment_started)
        return RunUsage(
            compute_seconds=scope.compute_before + attempt,
            attempt_compute_seconds=attempt,
            machine=scope.ctx.machine,
        )


usage = _Usage()
