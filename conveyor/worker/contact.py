"""The worker's contact with the engine: heartbeats, and what fencing asks of the worker.

    heartbeat every interval ──▶ acknowledged: in contact (and the runs to stop)
    lease answer ──▶ accepted only in contact and newer than every revoked lease; late ones
                     are checked with a heartbeat first
    no acknowledgement for the worker timeout ──▶ every attempt of ours stops

The engine takes a silent worker's runs back only a margin after the worker timeout, so once
this worker stops its attempts for lost contact, no attempt of ours runs beside the one that
replaces it (conveyor/protocol.py, "Fencing"). The state is here, with the heartbeat that
feeds it; what is decided from it is in decisions.py; the attempts and executors it acts on are
the supervisor's.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.protocol import AttemptSpec, Heartbeat, LeaseReply
from conveyor.worker import decisions

if TYPE_CHECKING:
    from conveyor.worker.supervisor import Supervisor


class Contact:
    """A supervisor's contact with the engine (see the module docstring)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        # when the last acknowledged heartbeat was sent, the highest lease count received, and
        # the leases revoked when the engine declared us lost
        self.acked_at = time.monotonic()
        self.lease_seq = 0
        self.revoked_through = 0
        # attempts of a late lease answer being checked (`confirm_late`): ours to the engine
        # already, so every heartbeat lists them, and a stop for one means it never starts
        self.unconfirmed: dict[str, AttemptSpec] = {}
        self.lost = False

    def registered(self, sent: float) -> None:
        """The engine registered us (it counts that as a heartbeat): in contact since `sent`.
        Without it, a worker whose code took most of the worker timeout to load would find
        itself out of contact at its first check, before its first heartbeat came back, and
        stop the attempts it had just leased."""
        self.acked_at = max(self.acked_at, sent)

    @property
    def timeout(self) -> float:
        return float(getattr(self._supervisor.link, "worker_timeout", 30.0))

    def ok(self) -> bool:
        """Whether a heartbeat was acknowledged within the worker timeout."""
        return decisions.in_contact(self.acked_at, time.monotonic(), self.timeout)

    async def heartbeat_loop(self) -> None:
        """Heartbeat every interval, each on its own (a heartbeat that hangs does not hold back
        the next). `check` stops every attempt once none was acknowledged for the timeout."""
        supervisor = self._supervisor
        while not supervisor.closed:  # through a graceful stop too: its runs are ours until then
            await asyncio.sleep(supervisor.heartbeat_interval)
            supervisor.background_task(self.heartbeat())

    async def heartbeat(self) -> set[str] | None:
        """One heartbeat. The runs the engine said to stop, or None when the heartbeat failed."""
        supervisor = self._supervisor
        sent = time.monotonic()
        processes = supervisor.all_processes()
        # attempts that ended but whose outcome is not sent yet are still ours to the engine
        running = [
            (run_id, entry.spec.fence) for p in processes for run_id, entry in p.inflight.items()
        ]
        running += [(run_id, fence) for p in processes for run_id, fence in p.stopping.items()]
        running += supervisor.outbox.unacknowledged()
        running += [(s.run_id, s.fence) for s in supervisor.waiting_attempts()]
        running += [(s.run_id, s.fence) for s in self.unconfirmed.values()]
        try:
            reply = await supervisor.link.heartbeat(
                supervisor.worker_id, Heartbeat(running=running, lease_seq=self.lease_seq)
            )
        except (ConveyorError, OSError) as exc:
            supervisor.link_failed(exc)
            return None
        self.acked_at = max(self.acked_at, sent)
        supervisor.link_ok()  # said when the server answers again, not when a long poll ends
        self.revoked_through = max(self.revoked_through, reply.revoked_through)
        if self.lost:
            self.lost = False
            supervisor.reporter("contact_ok", {})
        for run_id in reply.stop:
            supervisor.stop_run(run_id, "canceled")
        return set(reply.stop)

    async def regain(self) -> bool:
        """A heartbeat now, before leasing: attempts leased while out of contact would only be
        handed back (`accept`), again and again until the next heartbeat."""
        await self.heartbeat()
        return self.ok()

    def accept(self, reply: LeaseReply) -> bool:
        """Whether to start the attempts a lease handed out. Not when contact with the server was
        lost for the worker timeout (the engine may take those runs back at any moment), nor when
        the lease was revoked meanwhile (the answer arrived late): those attempts are handed back
        as interrupted, which the engine applies only if it still counts them as ours. (A reply
        without attempts is no lease of runs: it carries the count reached before, and its hooks
        are judged on their own.)"""
        self.lease_seq = max(self.lease_seq, reply.lease_seq)
        if decisions.lease_accepted(self.ok(), reply.lease_seq, self.revoked_through):
            return True
        if reply.attempts:
            self._supervisor.reporter("lease_refused", {"runs": len(reply.attempts)})
        self._supervisor.hand_back(
            reply.attempts,
            "The worker had lost contact with the server when this attempt reached it; "
            "it runs again and keeps its retries.",
        )
        return False

    async def confirm_late(self, reply: LeaseReply) -> list[AttemptSpec]:
        """The attempts of a lease answer that spent seconds on the network (a partition that
        healed, a congested link) may have been canceled or taken back while it was on its way:
        a heartbeat listing them asks the engine first, and only those it does not stop start.
        When the heartbeat fails too, all of them are handed back. So are those of rate-limited
        queues at once: their limit counted them as started when the lease was made, and
        started seconds later they would crowd into a window beside the starts admitted since
        (given back and leased again, a start counts twice: never a burst above the limit)."""
        counted = [s for s in reply.attempts if s.rate_limited]
        self._supervisor.hand_back(
            counted,
            "The answer that handed this attempt to the worker was late on the network, and its "
            "queue's rate limit counted its start when it was sent; it is leased again rather "
            "than started late, and keeps its retries.",
        )
        attempts = [s for s in reply.attempts if not s.rate_limited]
        if not attempts:
            return []
        # listed by every heartbeat until they start: one the heartbeat loop sends meanwhile
        # must not report them missing (the engine would take them back and lease them again)
        self.unconfirmed.update((s.run_id, s) for s in attempts)
        try:
            stop = await self.heartbeat()
        finally:
            # a stop from any heartbeat meanwhile (`stop_run`) took its attempt out
            pending = {s.run_id for s in attempts if self.unconfirmed.pop(s.run_id, None) is s}
        revoked = reply.lease_seq <= self.revoked_through  # the worker was judged lost meanwhile
        late = [
            s
            for s in attempts
            if stop is None or revoked or s.run_id in stop or s.run_id not in pending
        ]
        self._supervisor.hand_back(
            late,
            "The answer that handed this attempt to the worker was late on the network and the "
            "run had changed meanwhile (or could not be checked); it runs again if it still "
            "should, and keeps its retries.",
        )
        return [s for s in attempts if s not in late]

    def check(self, now: float) -> None:
        """Stop every attempt once no heartbeat was acknowledged for the worker timeout: the
        engine takes silent workers' runs back only a margin later, so an attempt of ours never
        runs beside the one that replaces it. Executors holding attempts are killed (a body that
        ignores cancellation must stop too); they start again for when contact returns."""
        if decisions.in_contact(self.acked_at, now, self.timeout):
            return
        supervisor = self._supervisor
        holding = [p for p in supervisor.all_processes() if p.inflight and p.kill_reason is None]
        waiting = supervisor.waiting_attempts()
        if not holding and not waiting:
            return
        if not self.lost:
            self.lost = True
            supervisor.reporter(
                "contact_lost",
                {
                    "seconds": now - self.acked_at,
                    "attempts": sum(len(p.inflight) for p in holding) + len(waiting),
                },
            )
        for proc in holding:
            proc.kill("lost_contact")
        supervisor.take_waiting(waiting)
        supervisor.hand_back(
            waiting,
            "The worker lost contact with the server before this attempt started; "
            "it runs again and keeps its retries.",
        )
