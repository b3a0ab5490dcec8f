"""The supervisor: leases runs, hands attempts to executors, reports what happened.

    lease loop ──▶ executors (per machine preset, pre-started) ──▶ outcomes, logs, calls
         ▲ wake-ups (new runs, freed capacity)                        │ batched
         └────────────────────────────── link (engine) ◀──────────────┘

It enforces what an executor cannot enforce on itself: a deadline past `max_duration` (a
CPU-bound loop blocks the executor's event loop, so the process is killed), the machine's
memory, and an event loop held past `stall_timeout` (process.py). An executor that dies takes
its attempts with it; each is reported as decisions.exit_outcome says, the engine retries, and
a fresh executor takes its place (the killing and replacing: replacement.py).
It never imports task code. What it decides (how much to lease, when to kill, what an exit
means for each attempt) is in decisions.py, apart from its I/O.

Executors come in pools, one per (version, machine). A worker with its own code (`conveyor
dev`, `conveyor worker` in a project folder) has one version, None, reloaded in generations. A
worker of a deployed environment (`conveyor worker --env prod`) runs each attempt on the
version its run is locked to: it makes the version ready on first use (conveyor/worker/
versions.py), warms up the current one as soon as it is promoted, and retires the executors of
versions nobody has used for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.errors import ApiError, ConveyorError, StaleAttempt, StoreUnavailable
from conveyor.models import MACHINES, TaskDefinition
from conveyor.protocol import (
    AttemptOutcome,
    AttemptSpec,
    DurableCall,
    HookJob,
    MetadataCall,
)
from conveyor.worker import decisions
from conveyor.worker.batches import Batches
from conveyor.worker.contact import Contact
from conveyor.worker.decisions import IDLE_POLL
from conveyor.worker.link import WorkerLink
from conveyor.worker.outbox import Outbox
from conveyor.worker.process import ExecutorProcess, Inflight, LoadFailed, PoolKey
from conveyor.worker.replacement import Replacement
from conveyor.worker.versions import PreparedVersion, VersionCache

log = logging.getLogger("conveyor.worker")

FLUSH_RETRY = 0.5  # seconds between sends of what the server or its database could not take
# seconds a stopping worker keeps trying to report what its attempts reached
STOP_REPORT_WAIT = 20.0
LINK_REPORT_EVERY = 30.0  # seconds between reports while the engine stays unreachable
# seconds a run's durable call waits out an unreachable server or database
CALL_OUTAGE_LIMIT = 120.0
VERSION_IDLE = 120.0  # seconds after which executors of a version that is not current are stopped
# answers of a client that say the server or its database is away, not that it refused


class Supervisor:
    def __init__(
        self,
        link: WorkerLink,
        *,
        root: Path,
        worker_id: str,
        name: str = "worker",
        environment: str = "dev",
        default_machine: str = "small-1x",
        executors: int | None = None,
        capacity: int = 200,
        heartbeat_interval: float = 5.0,
        reporter: Callable[[str, dict[str, Any]], None] | None = None,
        versions: VersionCache | None = None,
        partial_loads: bool = True,
        local_env: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.link = link
        # variables of this machine (`conveyor dev`'s .env), given to every attempt over the
        # environment's own (docs/environment-variables.md)
        self.local_env = local_env
        self.root = root
        self.worker_id = worker_id
        self.name = name
        self.environment = environment
        self.default_machine = default_machine
        # one per CPU, at least 2
        self.executors_per_machine = executors or max(2, os.cpu_count() or 2)
        self.capacity = capacity
        self.heartbeat_interval = heartbeat_interval
        self.reporter = reporter or (lambda event, data: None)
        self.generation = 0
        self.pools: dict[PoolKey, list[ExecutorProcess]] = {}
        self.draining: list[ExecutorProcess] = []
        self.waiting_for_executor: dict[PoolKey, list[AttemptSpec | HookJob]] = {}
        self.versions = versions  # set: a worker of a deployed environment
        # whether the tasks of the modules that import run when another fails (conveyor dev);
        # a `conveyor worker` refuses such code: its task list replaces the environment's, and
        # would take the broken modules' tasks away from the workers that run them
        self.partial_loads = partial_loads
        self.current_version: str | None = None
        self._prepared: dict[str, PreparedVersion] = {}
        self._version_errors: dict[str, str] = {}
        self._machines_reported: set[str] = set()
        self._last_used: dict[PoolKey, float] = {}
        self.tasks: list[TaskDefinition] | None = None
        self.load_error: str | None = None
        self.registered = False
        self.outbox = Outbox(link, worker_id, link_failed=self.link_failed, reporter=self.reporter)
        self.contact = Contact(self)  # heartbeats, and what fencing asks of us (contact.py)
        self.replacement = Replacement(self)  # executors killed and replaced (replacement.py)
        # the metadata flushes of all its runs go to the engine together (one transaction)
        self.flushes: Batches[tuple[str, int, MetadataCall]] = Batches(
            lambda items: link.metadata([(r, fence, call.ops) for r, fence, call in items])
        )
        self._wake = asyncio.Event()
        self._waiter: asyncio.Future[None] | None = None
        self.stopping = False
        self.closed = False
        self._background: set[asyncio.Task[Any]] = set()
        self._link_down_since: float | None = None
        self._link_reported = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def inflight_count(self) -> int:
        return sum(len(p.inflight) for p in self.all_processes()) + len(self.waiting_attempts())

    def waiting_attempts(self) -> list[AttemptSpec]:
        """Attempts leased and waiting for an executor to start (hook jobs aside)."""
        return [
            i
            for items in self.waiting_for_executor.values()
            for i in items
            if isinstance(i, AttemptSpec)
        ]

    def take_waiting(self, specs: list[AttemptSpec]) -> None:
        """Take attempts out of those waiting for an executor: they will not start here."""
        for items in self.waiting_for_executor.values():
            items[:] = [i for i in items if i not in specs]

    def hand_back(self, specs: list[AttemptSpec], message: str) -> None:
        """Give back attempts of a lease without starting them: each is reported interrupted,
        which the engine applies only if it still counts the run as this worker's."""
        for spec in specs:
            self.record(
                decisions.interrupted(spec.run_id, spec.attempt, message),
                Inflight(spec, time.monotonic(), None),
            )

    def all_processes(self) -> list[ExecutorProcess]:
        return [p for pool in self.pools.values() for p in pool] + self.draining

    def wake(self) -> None:
        """Something may have become startable: the lease loop looks again now."""
        self._wake.set()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self) -> None:
        """Load the code (unless `load()` already did), register, and serve until `stop()`."""
        if self.tasks is None:
            await self.load()
        loops = [
            self._lease_loop(),
            self._flush_loop(),
            self.contact.heartbeat_loop(),
            self._watch_loop(),
        ]
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def load(self) -> bool:
        """Start executors of a new generation with the current code. They replace the old ones
        (which finish their attempts first) when every module imports, or when the modules that
        fail defined none of the tasks served now (the first load, a new broken file): the good
        modules' tasks run, the broken ones are reported. Otherwise, and when the code does not
        load at all, the old generation keeps serving.
        A worker of a deployed environment registers and warms up the current version instead."""
        if self.versions is not None:
            return await self._load_deployed()
        self.generation += 1
        generation = self.generation
        keys = set(self.pools) | {(None, self.default_machine)}
        fresh: dict[PoolKey, list[ExecutorProcess]] = {}
        for key in keys:
            count = self.executors_per_machine if key[1] == self.default_machine else 1
            fresh[key] = [self.spawn(key, generation) for _ in range(count)]
        try:
            loads = await asyncio.gather(
                *(p.ready for pool in fresh.values() for p in pool if p.ready)
            )
        except LoadFailed as exc:
            self._discard(fresh)
            self.load_error = exc.message
            self.reporter("load_error", {"message": exc.message})
            return False
        tasks, failures = loads[0].tasks, loads[0].failures
        if failures and not self.partial_loads:
            self._discard(fresh)
            self.load_error = "; ".join(f.describe() for f in failures)
            self.reporter("load_error", {"message": self.load_error})
            return False
        lost = sorted({t.id for t in self.tasks or []} - {t.id for t in tasks}) if failures else []
        if lost:  # a module broken mid-edit: the code loaded before keeps serving its tasks
            self._discard(fresh)
            self.load_error = "; ".join(f.describe() for f in failures)
            self.reporter(
                "load_error", {"message": self.load_error, "failures": failures, "kept": lost}
            )
            await self.link.set_load_failures(failures)
            return False
        old = self.all_processes()
        self.pools = fresh
        for proc in old:
            if proc not in self.draining:
                self.draining.append(proc)
            proc.draining = True
            self.retire_if_idle(proc)
        if not self.registered:
            sent = time.monotonic()
            await self.link.register(self.worker_id, self.name, tasks)
            self.contact.registered(sent)
            self.registered = True
        else:
            await self.link.set_tasks(tasks)
        await self.link.set_load_failures(failures)
        self.tasks = tasks
        self.load_error = None
        self.reporter(
            "loaded",
            {"tasks": [t.id for t in tasks], "generation": generation, "failures": failures},
        )
        self._report_machines()
        for key in list(self.waiting_for_executor):
            self.dispatch_waiting(key)
        self.wake()
        return True

    @staticmethod
    def _discard(fresh: dict[PoolKey, list[ExecutorProcess]]) -> None:
        for pool in fresh.values():
            for proc in pool:
                proc.kill("load failed")

    async def _load_deployed(self) -> bool:
        if not self.registered:
            sent = time.monotonic()
            await self.link.register(self.worker_id, self.name, None, deployed=True)
            self.contact.registered(sent)
            self.registered = True
        self.generation = max(self.generation, 1)
        self.tasks = []  # the versions know their tasks; the server has their manifests
        current = getattr(self.link, "current_version", None)
        if current is None:
            self.reporter("no_version", {})
            return True
        return await self._warm(current)

    async def _warm(self, version: str) -> bool:
        """Make `version` ready and start its executors of the default machine (the current
        version: new runs start on it)."""
        self.current_version = version
        key: PoolKey = (version, self.default_machine)
        if not await self._ready_version(version):
            return False
        pool = self.pools.setdefault(key, [])
        fresh = [
            self.spawn(key, self.generation) for _ in range(self.executors_per_machine - len(pool))
        ]
        pool.extend(fresh)
        try:
            loads = await asyncio.gather(*(p.ready for p in pool if p.ready))
        except LoadFailed as exc:
            self.reporter("load_error", {"message": f"version {version}: {exc.message}"})
            return False
        tasks = [t.id for t in loads[0].tasks] if loads else []
        self.reporter("loaded", {"tasks": tasks, "generation": 1, "version": version})
        self._report_machines()
        self.dispatch_waiting(key)
        self.wake()
        return True

    async def _ready_version(self, version: str) -> bool:
        assert self.versions is not None
        if version in self._prepared:
            return True
        try:
            self._prepared[version] = await self.versions.prepare(version)
        except ConveyorError as exc:
            self._version_errors[version] = exc.message
            self.reporter("load_error", {"message": exc.message})
            return False
        return True

    async def stop(self, grace: float = 3.0) -> None:
        """Stop leasing, let running attempts finish for `grace` seconds, then stop executors.
        Attempts still running are handed back: the engine retries them without using up one
        of their attempts, and takes nothing more for this worker (a lease still open, say)."""
        self.stopping = True
        self.wake()
        deadline = time.monotonic() + grace
        while self.inflight_count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._report_before_stop()
        self.closed = True
        processes = self.all_processes()
        for proc in processes:
            proc.inflight.clear()
            proc.kill("worker stopping")
        # only once no body of ours runs may the engine hand our runs to another worker
        deadline = time.monotonic() + 5.0
        while any(not proc.gone() for proc in processes) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.flushes.close()  # their attempts are gone
        with contextlib.suppress(ConveyorError, OSError):
            await self.link.stopped(self.worker_id)

    async def _report_before_stop(self) -> None:
        """Send what attempts reached (up to the end of the grace period) before telling the
        engine we stop: it hands back the runs we still hold, and a finished attempt whose
        outcome was not sent would run again. Through an outage of the server or its database,
        keeps trying for up to STOP_REPORT_WAIT seconds."""
        deadline = time.monotonic() + STOP_REPORT_WAIT
        while not await self.outbox.flush():
            if time.monotonic() >= deadline:
                log.warning(
                    "could not report %d attempt outcomes before stopping: those runs run again",
                    len(self.outbox.outcomes),
                )
                return
            await asyncio.sleep(FLUSH_RETRY)

    def spawn(self, key: PoolKey, generation: int) -> ExecutorProcess:
        version, machine = key
        if version is None:
            root, python = self.root, None
        else:
            prepared = self._prepared[version]
            root, python = prepared.root, prepared.python
        proc = ExecutorProcess(
            root,
            self.environment,
            machine,
            generation,
            self._on_message,
            self.replacement.on_exit,
            version=version,
            python=python,
        )
        proc.start()
        return proc

    def retire_if_idle(self, proc: ExecutorProcess) -> None:
        if not proc.draining or proc.load:
            return
        # a thread that overran its deadline still spins in it: only a kill stops it
        if proc.tainted:
            proc.kill("retired after a timed-out sync attempt")
        elif not proc.send(("stop",)):
            proc.kill("retired")

    # -- leasing and dispatch ---------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while not self.stopping:
            self._wake.clear()
            timeout = IDLE_POLL
            if self.tasks is not None:
                if not self.contact.ok() and not await self.contact.regain():
                    await asyncio.sleep(1.0)
                    continue
                free = decisions.free_slots(self.capacity, self.inflight_count)
                sent = time.monotonic()
                try:
                    reply = await self.link.lease(self.worker_id, decisions.lease_size(free))
                except (ConveyorError, OSError) as exc:
                    self.link_failed(exc)
                    await asyncio.sleep(1.0)
                    continue
                self.link_ok()
                if self.versions is not None and reply.current_version not in (
                    None,
                    self.current_version,
                ):
                    self.background_task(self._warm(reply.current_version))  # promoted: warm it up
                if self.contact.accept(reply):
                    attempts = reply.attempts
                    if attempts and decisions.lease_late(time.monotonic() - sent - reply.held):
                        attempts = await self.contact.confirm_late(reply)
                    for spec in attempts:
                        self._dispatch(spec, spec.machine)
                # hooks have their own fence, whatever became of the attempts
                if self.contact.ok():
                    for job in reply.hooks:
                        self._dispatch(job, job.machine)
                if decisions.lease_again_at_once(len(reply.attempts), free):
                    continue  # full: more may be waiting, but capacity decides when
                timeout = decisions.poll_timeout(reply.next_due, time.time())
            await self._sleep_until_woken(timeout)

    async def _sleep_until_woken(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, or until `wake()`. A bare future rather than
        `wait_for(event.wait())`: a wake-up resumes the lease loop in one turn of the event
        loop, which is on the path from a trigger to its start."""
        if self._wake.is_set():
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def link_failed(self, exc: Exception) -> None:
        """Report an unreachable engine once, then every LINK_REPORT_EVERY seconds,
        not per retry."""
        now = time.monotonic()
        if self._link_down_since is None or now - self._link_reported >= LINK_REPORT_EVERY:
            self.reporter(
                "link_error", {"message": str(exc), "again": self._link_down_since is not None}
            )
            self._link_reported = now
        if self._link_down_since is None:
            self._link_down_since = now

    def link_ok(self) -> None:
        if self._link_down_since is not None:
            self.reporter("link_ok", {"seconds": time.monotonic() - self._link_down_since})
            self._link_down_since = None

    def background_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dispatch(self, item: AttemptSpec | HookJob, machine: str) -> None:
        if machine not in MACHINES:
            machine = self.default_machine
        version = None
        if self.versions is not None:
            version = item.version or self.current_version
            if version is None:  # a run from before any version existed: no code here runs it
                if isinstance(item, HookJob):
                    self.outbox.add_hook((item.run_id, item.hook, item.fence))
                else:
                    self.record(
                        AttemptOutcome(
                            item.run_id,
                            item.attempt,
                            "crashed",
                            error={
                                "name": "VersionUnavailable",
                                "code": "version_unavailable",
                                "message": "The run has no deployed version to run on.",
                            },
                        ),
                        Inflight(item, time.monotonic(), None),
                    )
                return
        key: PoolKey = (version, machine)
        self._last_used[key] = time.monotonic()
        pool = [
            p
            for p in self.pools.get(key, [])
            if not p.exited and not p.tainted and p.ready and p.ready.done()
        ]
        if not pool:
            self.waiting_for_executor.setdefault(key, []).append(item)
            if key not in self.pools:
                self.pools[key] = []
                self.background_task(self._start_pool(key))
            return
        proc = min(pool, key=lambda p: p.load)
        local = self.local_env() if self.local_env is not None else None
        if local:
            item.env = {**item.env, **local}
        if isinstance(item, AttemptSpec):
            now = time.monotonic()
            deadline = decisions.attempt_deadline(now, item.max_duration, item.compute_used)
            proc.inflight[item.run_id] = Inflight(item, now, deadline)
            self.reporter(
                "started", {"run_id": item.run_id, "task_id": item.task_id, "attempt": item.attempt}
            )
            if not proc.send(("attempt", item)):
                return  # the exit handler reports it as crashed
        else:
            proc.hooks.add(item.run_id)
            proc.send(("hook", item))

    async def _start_pool(self, key: PoolKey) -> None:
        """Start the first executor of a pool (making its version ready first), then hand it
        what waits for it. Attempts of a version that cannot be made ready fail as crashed,
        with the reason: they are retried per their policy."""
        version = key[0]
        if version is not None and not await self._ready_version(version):
            self.pools.pop(key, None)
            message = self._version_errors.get(
                version, f"version {version} could not be made ready on this worker"
            )
            for item in self.waiting_for_executor.pop(key, []):
                if isinstance(item, AttemptSpec):
                    self.record(
                        AttemptOutcome(
                            item.run_id,
                            item.attempt,
                            "crashed",
                            error={
                                "name": "VersionUnavailable",
                                "code": "version_unavailable",
                                "message": message,
                            },
                        ),
                        Inflight(item, time.monotonic(), None),
                    )
            return
        if self.stopping:
            return
        proc = self.spawn(key, self.generation)
        self.pools.setdefault(key, []).append(proc)
        assert proc.ready is not None
        proc.ready.add_done_callback(functools.partial(self.on_ready, key))

    def on_ready(self, key: PoolKey, _future: asyncio.Future[Any]) -> None:
        self._report_machines()
        self.dispatch_waiting(key)

    def _report_machines(self) -> None:
        """Say once per machine preset how its executors' CPU share is enforced."""
        for proc in self.all_processes():
            if proc.cpu and proc.machine not in self._machines_reported:
                self._machines_reported.add(proc.machine)
                self.reporter("machine", {"machine": proc.machine, "cpu": proc.cpu})

    def dispatch_waiting(self, key: PoolKey) -> None:
        items = self.waiting_for_executor.pop(key, [])
        for item in items:
            self._dispatch(item, key[1])

    # -- messages from executors -------------------------------------------------------------

    def _on_message(self, proc: ExecutorProcess, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "outcome":
            outcome: AttemptOutcome = message[1]
            entry = proc.inflight.pop(outcome.run_id, None)
            if message[2]:
                self.replacement.taint(proc)
            if entry is not None:
                self.record(outcome, entry)
            self.retire_if_idle(proc)
            self.wake()
        elif kind == "ended":  # the body of an attempt told to stop has stopped
            proc.stopping.pop(message[1], None)
        elif kind == "logs":
            self.outbox.add_logs(message[1])
            self.reporter("logs", {"entries": message[1]})
        elif kind == "hook_done":
            proc.hooks.discard(message[1])
            self.outbox.add_hook((message[1], message[2], message[3]))
            self.retire_if_idle(proc)
        elif kind == "extend":
            entry = proc.inflight.get(message[1])
            if entry is not None and entry.deadline is not None:
                entry.deadline += message[2]
        elif kind in ("call", "suspend"):
            task = asyncio.create_task(self._serve(proc, kind, *message[1:]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def record(self, outcome: AttemptOutcome, entry: Inflight) -> None:
        outcome.fence = entry.spec.fence
        self.outbox.add_outcome(outcome)
        self.reporter(
            "finished",
            {
                "run_id": outcome.run_id,
                "task_id": entry.spec.task_id,
                "kind": outcome.kind,
                "attempt": outcome.attempt,
                "seconds": time.monotonic() - entry.started,
                "error": outcome.error,
            },
        )

    async def _serve(
        self,
        proc: ExecutorProcess,
        kind: str,
        call_id: int,
        run_id: str,
        attempt: int,
        fence: int,
        *args: Any,
    ) -> None:
        """A request of an attempt (a durable call, or suspending its run), answered to it."""
        what = "suspend" if kind == "suspend" else getattr(args[0], "op", "call")
        try:
            if kind == "suspend":
                result = await self._suspend(proc, run_id, attempt, fence, *args)
            else:
                result = await self._call_through_outages(run_id, fence, args[0])
            proc.send(("reply", call_id, True, result))
        except StaleAttempt as exc:
            # the run was canceled, ended or taken back: stop the attempt before it hears why
            self.stop_run(run_id, "stale")
            proc.send(
                ("reply", call_id, False, {"type": type(exc).__name__, "message": exc.message})
            )
        except ConveyorError as exc:
            proc.send(
                ("reply", call_id, False, {"type": type(exc).__name__, "message": exc.message})
            )
        except Exception as exc:  # a bug of ours: the attempt gets an error it can show
            log.exception("call %s failed", what)
            proc.send(
                (
                    "reply",
                    call_id,
                    False,
                    {"type": "ConveyorError", "message": f"{what} failed: {exc}"},
                )
            )

    async def _suspend(
        self,
        proc: ExecutorProcess,
        run_id: str,
        attempt: int,
        fence: int,
        waitpoints: list[str],
        compute_used: float,
    ) -> dict[str, Any]:
        # its lines first: once it resumes elsewhere, lines of this segment would be stale
        await self.outbox.flush_logs_of(run_id)
        result = await self.link.suspend(
            self.worker_id, run_id, attempt, fence, waitpoints, compute_used
        )
        if result.get("suspended") or result.get("gone"):
            entry = proc.inflight.pop(run_id, None)
            if entry is not None and result.get("suspended"):
                self.reporter(
                    "suspended",
                    {"run_id": run_id, "task_id": entry.spec.task_id, "waiting": len(waitpoints)},
                )
            self.retire_if_idle(proc)
            self.wake()
        return result

    async def _call_through_outages(self, run_id: str, fence: int, call: DurableCall) -> Any:
        """A durable call, sent again while the server or its database is briefly away (a
        restart): the run waits rather than failing an attempt. Only answers that say nothing
        was done are retried; every call is keyed in the run's journal anyway."""
        delay, waited = 0.2, 0.0
        while True:
            try:
                if isinstance(call, MetadataCall):
                    return await self.flushes.submit((run_id, fence, call))
                return await self.link.call(run_id, fence, call)
            except (StoreUnavailable, ApiError) as exc:
                transient = isinstance(exc, StoreUnavailable) or exc.api_code == "unreachable"
                if not transient or waited >= CALL_OUTAGE_LIMIT or self.closed:
                    raise
                self.link_failed(exc)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    # -- reporting, heartbeats, watchdog -----------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self.outbox.ready.wait()
            self.outbox.ready.clear()
            if await self.outbox.flush():
                # slots of reported outcomes are free now that the engine knows: lease again
                self.wake()
            else:  # the server or its database is away: again in a moment
                await asyncio.sleep(FLUSH_RETRY)
                self.outbox.ready.set()
            if self.stopping and self.outbox.empty and not self.inflight_count:
                return

    def stop_run(self, run_id: str, reason: str = "canceled") -> None:
        """Stop an attempt the engine no longer wants (canceled or taken back)."""
        self.contact.unconfirmed.pop(run_id, None)  # not started yet: it never will
        for proc in self.all_processes():
            entry = proc.inflight.pop(run_id, None)
            if entry is not None:
                proc.stopping[run_id] = entry.spec.fence
                proc.send(("cancel", run_id, reason))
                self.wake()
                self.retire_if_idle(proc)

    def _retire_idle_versions(self, now: float) -> None:
        """Stop the executors of versions other than the current one that nobody used for
        VERSION_IDLE seconds (their runs ended or moved on);
        the next run on one starts them again."""
        for key in list(self.pools):
            version = key[0]
            if (
                version is None
                or version == self.current_version
                or key in self.waiting_for_executor
            ):
                continue
            pool = self.pools[key]
            if now - self._last_used.get(key, now) < VERSION_IDLE or any(p.load for p in pool):
                continue
            del self.pools[key]
            for proc in pool:
                proc.retired = True
                proc.draining = True
                self.draining.append(proc)
                self.retire_if_idle(proc)

    async def _watch_loop(self) -> None:
        last_memory_check = 0.0
        while not self.stopping:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            self.contact.check(now)
            self.replacement.kill_overdue(now)
            if now - last_memory_check >= 0.5:
                last_memory_check = now
                if self.versions is not None:
                    self._retire_idle_versions(now)
                self.replacement.kill_over_memory()


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
