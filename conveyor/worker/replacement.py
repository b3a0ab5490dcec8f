"""Executors killed and replaced: the supervisor's side of what an executor cannot enforce on
itself.

    an attempt past its deadline ──▶ its executor killed (a blocked event loop cannot stop it)
    an executor over its machine's memory ──▶ killed
    an attempt holding the event loop past stall_timeout ──▶ killed (watchdog.py, process.py)
    a sync attempt past its deadline (its thread cannot be stopped) ──▶ tainted: replaced at
        once, killed when its other attempts are done
    an executor that exits ──▶ each attempt in it reported (decisions.exit_outcome: timed out,
        stalled with the blocking code's stack, interrupted, crashed), and a fresh executor in
        its place (at once, unless it crash-loops)

What each of these means for an attempt is decided in decisions.py; the pools, leases and
dispatch are the supervisor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING

from conveyor.worker import decisions
from conveyor.worker.process import ExecutorProcess, LoadFailed, PoolKey

if TYPE_CHECKING:
    from conveyor.worker.supervisor import Supervisor


class Replacement:
    """A supervisor's executors killed, tainted and replaced (see the module docstring)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._restarts: list[float] = []  # when crashed executors were started again

    def kill_overdue(self, now: float) -> None:
        """Kill each executor running an attempt past its deadline."""
        for proc in self._supervisor.all_processes():
            for run_id, entry in proc.inflight.items():
                if decisions.past_deadline(entry.deadline, now) and proc.kill_reason is None:
                    proc.kill(f"timed_out:{run_id}")

    def kill_over_memory(self) -> None:
        """Kill each executor using more memory than its machine has."""
        for proc in self._supervisor.all_processes():
            reason = decisions.memory_kill_reason(proc.machine, proc.rss_bytes())
            if reason is not None and proc.kill_reason is None:
                proc.kill(reason)

    def taint(self, proc: ExecutorProcess) -> None:
        """A sync attempt overran its deadline in this executor: its thread cannot be stopped,
        so the executor takes no new work and is replaced."""
        supervisor = self._supervisor
        if proc.tainted:
            return
        proc.tainted = True
        pool = supervisor.pools.get(proc.key, [])
        if proc in pool:
            pool.remove(proc)
            replacement = supervisor.spawn(proc.key, supervisor.generation)
            pool.append(replacement)
            assert replacement.ready is not None  # what is leased while it starts waits for it
            replacement.ready.add_done_callback(functools.partial(supervisor.on_ready, proc.key))
        proc.draining = True
        if proc not in supervisor.draining:
            supervisor.draining.append(proc)
        supervisor.retire_if_idle(proc)

    def on_exit(self, proc: ExecutorProcess, code: int | None) -> None:
        """An executor has exited: report what each of its attempts became, and replace it
        unless it was meant to go (a worker stopping, an older generation, a retired
        version)."""
        supervisor = self._supervisor
        reason = proc.kill_reason
        for run_id, entry in list(proc.inflight.items()):
            spec = entry.spec
            outcome = decisions.exit_outcome(
                run_id, spec.attempt, spec.max_duration, reason, code, proc.stall_stack
            )
            supervisor.record(outcome, entry)
        proc.inflight.clear()
        proc.hooks.clear()  # their leases expire and another worker (or we) run them again
        if proc in supervisor.draining:
            supervisor.draining.remove(proc)
        pool = supervisor.pools.get(proc.key, [])
        if proc in pool:
            pool.remove(proc)
            if (
                not supervisor.stopping
                and proc.generation == supervisor.generation
                and not proc.retired
            ):
                self._restart(proc.key)
        supervisor.wake()

    def _restart(self, key: PoolKey) -> None:
        supervisor = self._supervisor
        # a crash loop must not spin the CPU
        self._restarts, delay = decisions.restart_delay(self._restarts, time.monotonic())
        generation = supervisor.generation

        async def later() -> None:
            await asyncio.sleep(delay)
            if not supervisor.stopping and generation == supervisor.generation:
                proc = supervisor.spawn(key, generation)
                supervisor.pools.setdefault(key, []).append(proc)
                with contextlib.suppress(LoadFailed):
                    assert proc.ready is not None
                    await proc.ready
                supervisor.dispatch_waiting(key)
                supervisor.wake()

        supervisor.background_task(later())
