"""Debounce, queue rate limits and the turns of concurrency keys on the team topology: two
`conveyor server` processes and two `conveyor worker` processes on one PostgreSQL, triggered
through both servers at once, with a worker killed (`kill -9`) or cut off from its server by a
network partition (a network namespace of the test's own, with nftables) in the middle.

The bodies (tests/e2e/project/tasks/flow.py) record when each execution started, that it was
still running (ticks) and whether it ended; the assertions are invariants of that history: one run
per debounce window, at most `limit` starts in any window of a rate limit's period for each key,
every run completed and executed to the end once, never twice at the same time, a small tenant
started within a turn of a large tenant's backlog, and weighted keys served in proportion.

A concurrency limit is each concurrency key's own, so keys compete for the workers' capacity:
the module's fleet has two workers of CAPACITY attempts at once each."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import secrets
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client
from tests.campaign import net
from tests.campaign.processes import Proc, conveyor
from tests.databases import postgres_schema
from tests.e2e.conftest import WorkerProcess, make_project, wait_for
from tests.e2e.fleet import Fleet, fleet_on

WORKER_TIMEOUT = 4.0  # seconds a server waits for a silent worker before taking its runs back
LIMIT, PERIOD = 3, 2.0  # the rate limit of queue "flow-rated"
# a body starts a moment after the lease that counted its start; that moment varies a little
GRACE = 0.3


@dataclass
class Execution:
    """One execution of a body: its `start` line, the last time it was seen running (its latest
    tick, or its end), and whether it ended."""

    id: str
    run: str
    attempt: int
    task: str
    key: str | None
    worker: str
    payload: Any
    start: float
    seen: float
    end: float | None = None


@dataclass
class History:
    """What the bodies of the project at `root` wrote to its flow.log."""

    root: Path

    def read(self) -> list[Execution]:
        path = self.root / "flow.log"
        found: dict[str, Execution] = {}
        for raw in path.read_text().splitlines() if path.exists() else []:
            line = json.loads(raw)
            if line["k"] == "start":
                found[line["x"]] = Execution(
                    line["x"],
                    line["run"],
                    line["attempt"],
                    line["task"],
                    line["key"],
                    line["worker"],
                    line["payload"],
                    line["at"],
                    line["at"],
                )
                continue
            execution = found[line["x"]]
            execution.seen = max(execution.seen, line["at"])
            if line["k"] == "end":
                execution.end = line["at"]
        return sorted(found.values(), key=lambda e: e.start)

    def of(self, runs: set[str] | list[str]) -> list[Execution]:
        wanted = set(runs)
        return [e for e in self.read() if e.run in wanted]


def ended(history: History, ids: list[str], timeout: float, what: str) -> list[Execution]:
    """The executions of `ids` once each run has an execution that ended."""

    def done() -> list[Execution] | None:
        executions = history.of(ids)
        return executions if {e.run for e in executions if e.end} == set(ids) else None

    result = wait_for(done, timeout=timeout, interval=0.2, what=what)
    assert result is not None
    return result


CAPACITY = 2  # attempts at once per worker of the module's fleet: 4 slots the keys compete for


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two servers on one PostgreSQL schema and one worker for each, of CAPACITY each."""
    root = make_project(tmp_path_factory.mktemp("flow"))
    with (
        postgres_schema() as url,
        fleet_on(
            url, root, workers=(0, 1), worker_timeout=WORKER_TIMEOUT, capacity=CAPACITY
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def history(fleet: Fleet) -> History:
    return History(fleet.root)


def tag() -> str:
    return secrets.token_hex(4)


# -- debounce --------------------------------------------------------------------------------


@dataclass
class Answer:
    n: int
    id: str
    cached: bool
    sent: float
    answered: float


def debounce_trigger(client: Client, n: int, key: str, spec: dict[str, Any]) -> Answer:
    sent = time.time()
    handle = client.trigger(
        "flow-debounced", {"key": key, "n": n}, tags=[key], debounce={"key": key, **spec}
    )
    return Answer(n, handle.id, bool(handle.is_cached), sent, time.time())


def race(fleet: Fleet, count: int, key: str, spec: dict[str, Any]) -> list[Answer]:
    """`count` triggers with one debounce key at once, from as many threads, half through each
    server."""
    barrier = threading.Barrier(count)
    answers: list[Answer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        try:
            with fleet.client(n % 2) as client:
                barrier.wait(timeout=30)
                answer = debounce_trigger(client, n, key, spec)
            with lock:
                answers.append(answer)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(answers) == count
    return answers


def only_run_of(fleet: Fleet, key: str) -> str:
    """The one run tagged `key` (every trigger of a test tags its runs with its debounce key)."""
    with fleet.client(1) as client:
        runs = client.runs.list(tag=key, limit=100).data
    assert len(runs) == 1, [(r.id, r.status) for r in runs]
    return runs[0].id


def test_debounce_trailing_racing_triggers_on_both_servers_make_one_run_with_the_last_payload(
    fleet: Fleet, history: History
) -> None:
    key, delay = f"trail-{tag()}", 3.0
    spec = {"delay": f"{delay:g}s"}
    answers = race(fleet, 16, key, spec)
    run_id = answers[0].id
    assert {a.id for a in answers} == {run_id}  # every answer names the one run
    assert sum(not a.cached for a in answers) == 1  # one trigger made it, the others joined it
    # then triggers one after another, alternately through each server: the last one is known
    for n in range(100, 104):
        with fleet.client(n % 2) as client:
            answer = debounce_trigger(client, n, key, spec)
        assert (answer.id, answer.cached) == (run_id, True)
    last = answer
    with fleet.client(0) as client:
        assert client.runs.retrieve(run_id).status.value == "DELAYED"
    (execution,) = ended(history, [run_id], 30, "the debounced run")
    assert execution.payload == {"key": key, "n": last.n}  # trailing: the last trigger's payload
    # it started `delay` after the last trigger, not after the first
    assert last.sent + delay - 0.05 <= execution.start <= last.answered + delay + 2.0
    with fleet.client(1) as client:
        run = client.runs.poll(run_id, timeout=30)
        assert run.status.value == "COMPLETED" and run.payload == execution.payload
        # once the run has started, the key gathers a new run
        after = debounce_trigger(client, 200, key, spec)
        assert after.id != run_id and not after.cached
        client.runs.cancel(after.id)
    time.sleep(0.5)
    assert len(history.of([run_id])) == 1  # executed once, by one worker


def test_debounce_leading_racing_triggers_make_one_run_with_the_first_payload(
    fleet: Fleet, history: History
) -> None:
    key, delay = f"lead-{tag()}", 2.0
    spec = {"delay": f"{delay:g}s", "mode": "leading"}
    answers = race(fleet, 16, key, spec)
    run_id = answers[0].id
    assert {a.id for a in answers} == {run_id}
    (first,) = [a for a in answers if not a.cached]  # the trigger that made the run came first
    assert only_run_of(fleet, key) == run_id
    (execution,) = ended(history, [run_id], 30, "the debounced run")
    assert execution.payload == {"key": key, "n": first.n}  # leading: the first trigger's payload
    assert execution.start >= max(a.sent for a in answers) + delay - 0.05
    time.sleep(0.5)
    assert len(history.of([run_id])) == 1
    assert only_run_of(fleet, key) == run_id


def test_debounce_max_delay_bounds_the_wait_while_triggers_keep_coming(
    fleet: Fleet, history: History
) -> None:
    key, delay, max_delay = f"bound-{tag()}", 1.0, 3.0
    spec = {"delay": f"{delay:g}s", "max_delay": f"{max_delay:g}s"}
    answers: list[Answer] = []
    clients = [fleet.client(0), fleet.client(1)]
    try:
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < max_delay + 2.5:  # a trigger every 0.3 s, for 5.5 s
            answers.append(debounce_trigger(clients[n % 2], n, key, spec))
            n += 1
            time.sleep(0.3)
    finally:
        for client in clients:
            client.close()
    first = answers[0]
    run_id = first.id
    assert not first.cached
    runs = list(dict.fromkeys(a.id for a in answers))  # in the order the triggers made them
    executions = ended(history, runs, 30, "the debounced runs")
    (execution,) = [e for e in executions if e.run == run_id]
    # each trigger pushed the start 1 s on, yet the run started when max_delay had passed
    assert first.sent + max_delay - 0.05 <= execution.start <= first.sent + max_delay + 1.0
    for answer in answers:
        if answer.answered < first.sent + max_delay - 0.1:
            assert answer.id == run_id  # triggers within the window joined the run
        if answer.sent > execution.start:
            assert answer.id != run_id  # once it started, the key gathered a new run
    joined = [a for a in answers if a.id == run_id]
    assert execution.payload == {"key": key, "n": joined[-1].n}  # the last that joined it
    # the triggers after it made one more run, started a second after the last of them or
    # max_delay after the first of them, whichever came first
    assert len(runs) == 2, runs
    (later,) = [e for e in executions if e.run == runs[1]]
    assert later.payload == {"key": key, "n": answers[-1].n}
    opened = next(a for a in answers if a.id == runs[1])
    due = min(answers[-1].sent + delay, opened.sent + max_delay)
    assert due - 0.05 <= later.start <= due + 1.0
    assert Counter(e.run for e in history.of(runs)) == {run_id: 1, runs[1]: 1}


# -- rate limits -----------------------------------------------------------------------------


def trigger_rated(fleet: Fleet, keys: list[str], per_key: int, seconds: float) -> list[str]:
    """`per_key` runs of each key, the keys interleaved, half of the batch through each server."""
    items = [
        {"payload": {"seconds": seconds}, "options": {"concurrency_key": key}}
        for _ in range(per_key)
        for key in keys
    ]
    half = len(items) // 2
    ids: list[str] = []
    for i, part in enumerate((items[:half], items[half:])):
        with fleet.client(i) as client:
            ids += [r.id for r in client.tasks.batch_trigger("flow-rated", part).runs]
    return ids


def assert_rate_limited(executions: list[Execution], keys: list[str], per_key: int) -> None:
    """For each key: no window of the period (less the grace) holds more than LIMIT starts of
    bodies, retries and executions cut short included; and the limit was reached, so the starts
    were spread over at least (runs / LIMIT - 1) periods."""
    for key in keys:
        starts = sorted(e.start for e in executions if e.key == key)
        assert len(starts) >= per_key
        for i, at in enumerate(starts):
            within = [s for s in starts[i:] if s < at + PERIOD - GRACE]
            assert len(within) <= LIMIT, (key, [round(s - starts[0], 3) for s in starts])
        least = (-(-per_key // LIMIT) - 1) * PERIOD - GRACE
        assert starts[-1] - starts[0] >= least, (key, starts[-1] - starts[0])


FINAL = {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"}


def finished(fleet: Fleet, history: History, ids: list[str], timeout: float) -> list[Execution]:
    """The executions of `ids` once every run has ended, each COMPLETED (a body that ended on a
    worker cut off from its server has not completed its run: its result never arrived)."""
    statuses: Counter[str] = Counter()

    def final() -> bool:
        nonlocal statuses
        with fleet.client(0) as client:
            statuses = Counter(client.runs.retrieve(i).status.value for i in ids)
        return set(statuses) <= FINAL

    wait_for(final, timeout=timeout, interval=0.5, what="every run to end")
    assert statuses == {"COMPLETED": len(ids)}, statuses
    executions = history.of(ids)
    assert {e.run for e in executions if e.end is not None} == set(ids)
    return executions


def test_rate_limit_per_key_holds_across_two_servers_and_two_workers(
    fleet: Fleet, history: History
) -> None:
    keys = [f"rate-{tag()}-{k}" for k in "abc"]
    ids = trigger_rated(fleet, keys, per_key=9, seconds=0.2)
    executions = finished(fleet, history, ids, 60)
    assert_rate_limited(executions, keys, per_key=9)
    assert Counter(e.run for e in executions) == dict.fromkeys(ids, 1)  # each executed once
    assert {e.worker for e in executions} == {"w0-0", "w1-0"}  # both workers took runs


def test_rate_limit_holds_when_a_worker_is_killed_and_its_runs_are_taken_back(
    fleet: Fleet, history: History
) -> None:
    keys = [f"kill-{tag()}-{k}" for k in "ab"]
    ids = trigger_rated(fleet, keys, per_key=12, seconds=1.0)
    victim = fleet.workers[0]

    def running_on_victim() -> bool:
        return any(e.worker == victim.name and e.end is None for e in history.of(ids))

    wait_for(running_on_victim, timeout=30, what=f"{victim.name} to be running a body")
    victim.kill9()
    killed_at = time.time()  # nothing of the victim's runs after this
    try:
        # the servers take back what it held after the worker timeout; the other worker runs it
        executions = finished(fleet, history, ids, 90)
    finally:
        victim.start()  # the fleet of the next tests has its two workers again
    assert_rate_limited(executions, keys, per_key=12)
    cut = [e for e in executions if e.worker == victim.name and e.end is None]
    assert cut, "the kill interrupted no body"
    for execution in cut:
        again = [e for e in executions if e.run == execution.run and e.end is not None]
        assert again and all(e.attempt > execution.attempt for e in again)
    for run, group in _by_run(executions).items():
        done = [e for e in group if e.end is not None]
        # executed to the end once; a body that ended on the victim just before the kill, its
        # result never sent, is the only one that may have ended before its run's retry
        extra = [e for e in done[:-1] if not (e.worker == victim.name and e.seen <= killed_at)]
        assert len(done) >= 1 and not extra, (run, group)


def _by_run(executions: list[Execution]) -> dict[str, list[Execution]]:
    groups: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        groups[e.run].append(e)
    return groups


# -- a network partition ---------------------------------------------------------------------


@dataclass(frozen=True)
class NamespacedHost(net.Host):
    """A host of this module: a namespace of its own prefix, apart from the fault campaign's."""

    @property
    def netns(self) -> str:
        return "cvflow-" + self.name


CUT_OFF = NamespacedHost("w", "10.79.0.2")  # the worker's namespace
# the machine's end of the veth, where the cut-off worker's server listens
GATEWAY = net.Host("machine", "10.79.0.1")
VETH = "cvflow-w0"


def require_netns() -> None:
    """The partition test makes a network namespace: under CI its absence is a failure, on a
    developer's machine (not root, say) the test is skipped."""
    reason = None
    if os.geteuid() != 0:
        reason = "the partition test makes a network namespace and needs root"
    elif subprocess.run(["which", "nft"], capture_output=True).returncode != 0:
        reason = "the partition test needs nft (Debian package nftables)"
    else:
        try:
            net.probe()
        except net.NetnsUnavailable as exc:
            reason = str(exc)
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the partition test")
        pytest.skip(reason)


def remove_namespace() -> None:
    """The namespace and what runs in it (what a crashed earlier run left behind included)."""
    for pid in net.sh("ip", "netns", "pids", CUT_OFF.netns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    net.sh("ip", "netns", "del", CUT_OFF.netns, check=False)
    net.sh("ip", "link", "del", VETH, check=False)  # gone with the namespace, unless half made


@contextlib.contextmanager
def namespace() -> Iterator[None]:
    """The worker's namespace, joined to the machine by a veth pair on 10.79.0.0/30, with the
    nftables table that cuts and heals it."""
    require_netns()
    remove_namespace()
    try:
        net.sh("ip", "netns", "add", CUT_OFF.netns)
        net.sh(
            "ip",
            "link",
            "add",
            VETH,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            CUT_OFF.netns,
        )
        net.sh("ip", "addr", "add", f"{GATEWAY.ip}/30", "dev", VETH)
        net.sh("ip", "link", "set", VETH, "up")
        CUT_OFF.run("ip", "addr", "add", f"{CUT_OFF.ip}/30", "dev", "eth0")
        CUT_OFF.run("ip", "link", "set", "eth0", "up")
        CUT_OFF.run("ip", "link", "set", "lo", "up")
        CUT_OFF.nft(net.FILTER)
        yield
    finally:
        remove_namespace()


@pytest.mark.timeout(180)
def test_rate_limit_holds_when_a_worker_is_partitioned_from_its_server(tmp_path: Path) -> None:
    """Worker `wns` in a network namespace works for the second server, which listens on the
    machine's end of the veth; worker `w0-0` works for the first server over loopback."""
    root = make_project(tmp_path)
    with (
        namespace(),
        postgres_schema() as url,
        fleet_on(
            url, root, workers=(), hosts=("127.0.0.1", GATEWAY.ip), worker_timeout=WORKER_TIMEOUT
        ) as fleet,
    ):
        server = fleet.servers[1]
        cut_off = Proc(
            "wns",
            CUT_OFF,
            conveyor("worker", "--name", "wns", "--executors", "1"),
            root,
            cwd=root,
            env={
                "CONVEYOR_API_URL": server.api_url,
                "CONVEYOR_SECRET_KEY": server.secret_key,
                "FLEET_WORKER": "wns",
            },
        )
        other = WorkerProcess(fleet.servers[0], "w0-0", env={"FLEET_WORKER": "w0-0"})
        try:
            cut_off.start(ready="Loaded tasks", timeout=30)
            partitioned(fleet, History(root), other)
        finally:
            other.stop()
            cut_off.stop(timeout=10)


def partitioned(fleet: Fleet, history: History, other: WorkerProcess) -> None:
    keys = [f"cut-{tag()}-{k}" for k in "ab"]
    # bodies longer than the worker timeout: a cut-off body that went on would still be running
    # when its run starts elsewhere
    ids = trigger_rated(fleet, keys, per_key=12, seconds=WORKER_TIMEOUT + 2)

    def running_cut_off() -> bool:
        return any(e.worker == "wns" and e.end is None for e in history.of(ids))

    # the cut-off worker alone at first, so that it surely holds runs when the cut comes (two
    # workers racing for the starts a window allows may leave it none)
    wait_for(running_cut_off, timeout=30, what="the worker in the namespace to run a body")
    cut_at = time.time()
    net.cut(CUT_OFF, [GATEWAY])
    try:
        other.start()
        # past the worker timeout: the server takes its runs back, the other worker runs them
        time.sleep(max(0.0, cut_at + WORKER_TIMEOUT + 3 - time.time()))
    finally:
        net.heal(CUT_OFF)
    executions = finished(fleet, history, ids, 90)
    assert_rate_limited(executions, keys, per_key=12)
    groups = _by_run(executions)
    # never two executions of a run at the same time: each was seen running only before the next
    for run, group in groups.items():
        for before, after in itertools.pairwise(group):
            assert before.seen <= after.start, (run, group)
    # the bodies running on the cut-off worker were stopped by it within the worker timeout
    # (it could not get a heartbeat acknowledged), and their runs were taken back: a later
    # attempt completed them (on whichever worker the queue's order gave them to)
    held = [e for e in executions if e.worker == "wns" and e.start < cut_at < (e.end or math.inf)]
    assert held, "the cut-off worker held no run"
    for e in held:
        assert e.end is None and e.seen < cut_at + WORKER_TIMEOUT + 1.0, e
        again = [x for x in groups[e.run] if x.attempt > e.attempt and x.end is not None]
        assert again, groups[e.run]
    assert any(e.worker == "w0-0" and e.start > cut_at for e in executions)


# -- fairness between concurrency keys -------------------------------------------------------


def test_a_small_tenant_starts_within_a_turn_of_a_large_backlog(
    fleet: Fleet, history: History
) -> None:
    big, small = f"big-{tag()}", f"small-{tag()}"
    items = [{"payload": {"seconds": 0.3}, "options": {"concurrency_key": big}}] * 1000
    ids: list[str] = []
    for i, part in enumerate((items[:500], items[500:])):
        with fleet.client(i) as client:
            ids += [r.id for r in client.tasks.batch_trigger("flow-fair", part).runs]
    wait_for(lambda: len(history.of(ids)) >= 6, timeout=30, what="the backlog to be under way")
    with fleet.client(1) as client:
        handle = client.trigger("flow-fair", {"seconds": 0.3}, concurrency_key=small)
        created = client.runs.retrieve(handle.id).created_at.timestamp()
    (mine,) = ended(history, [handle.id], 30, "the small tenant's run")
    with fleet.client(0) as client:
        client.queues.pause("flow-fair")  # the rest of the backlog stays queued
    bigs = history.of(ids)
    overtaking = [e for e in bigs if created < e.start < mine.start]
    # the big tenant's runs that started after the small one was triggered and before it: at
    # most those leased into the fleet's slots before the trigger, and those leased beside it or
    # just after it by the other worker. A queue in order of arrival would start the whole
    # backlog first.
    slots = CAPACITY * len(fleet.workers)
    assert len(overtaking) <= slots + 2, [round(e.start - created, 3) for e in overtaking]
    assert len([e for e in bigs if e.start < mine.start]) < 100


def test_weighted_keys_take_turns_in_proportion(fleet: Fleet, history: History) -> None:
    with fleet.client(0) as client:
        client.queues.pause("flow-weighted")
        ids = [
            r.id
            for r in client.tasks.batch_trigger(
                "flow-weighted",
                [{"payload": {"seconds": 0.05}, "options": {"concurrency_key": "a"}}] * 30,
            ).runs
        ]
    with fleet.client(1) as client:
        ids += [
            r.id
            for r in client.tasks.batch_trigger(
                "flow-weighted",
                [{"payload": {"seconds": 0.05}, "options": {"concurrency_key": "b"}}] * 30,
            ).runs
        ]
        client.queues.resume("flow-weighted")
    executions = ended(history, ids, 60, "every weighted run")
    order = [e.key for e in executions]
    # while both have runs waiting, "a" starts three for every one of "b"
    for n in (20, 36):
        assert abs(order[:n].count("a") - 0.75 * n) <= 2, (n, "".join(k or "-" for k in order))
