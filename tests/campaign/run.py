"""The fault campaign (docs/fault-campaign.md): a PostgreSQL primary and its streaming replica, two
`conveyor server`s and four `conveyor worker`s, each on its own test host (a network namespace),
under a mixed load, while faults are injected at random from a seed. Then every fault is healed,
the load drains, and tests/campaign/checker.py reads the recorded history and the database's
final state.

    sudo python -m tests.campaign.run --seconds 120 --seed 7 --out /tmp/campaign

Exit status 0 when the checker finds no violation, 1 when it finds some, 2 when the campaign
could not run. The report is DIR/report.json (figures and violations)."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.campaign import checker, net
from tests.campaign.postgres import Cluster
from tests.campaign.processes import REPO, TOKEN, Proc, conveyor, skewed

HOSTS = {
    "drv": 2,
    "db1": 11,
    "db2": 12,
    "srv1": 21,
    "srv2": 22,
    "w1": 31,
    "w2": 32,
    "w3": 33,
    "w4": 34,
}
SERVER_OF = {"w1": "srv1", "w2": "srv1", "w3": "srv2", "w4": "srv2"}
DELAYED = "w4"  # reaches its server through the delaying proxy
PORT, PROXY_PORT = 8000, 18000
WORKER_TIMEOUT = 6.0
EXECUTORS = 2
ENV_LIMIT = 6  # below the 8 executors of the fleet, so the environment's limit binds
QUEUE_LIMITS = {"camp-limited": 3}
PROJECT = Path(__file__).parent / "project"
FINAL = ("COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED")

FAULTS = {  # kind: weight
    "kill-worker": 3,
    "kill-executor": 3,
    "kill-server": 2,
    "partition-worker-server": 3,
    "partition-server-db": 2,
    "lossy-link": 2,
    "delay": 2,
    "pg-restart": 1,
    "failover": 1,
    "clock-skew": 1,
}


class History:
    """The driver's and the fault injector's lines, in the same file as the bodies' lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        os.chmod(path, 0o666)
        self.lock = threading.Lock()

    def record(self, what: str, /, **fields: Any) -> None:
        line = {"k": what, "mono": time.monotonic(), "wall": time.time(), "host": "drv", **fields}
        with self.lock:
            os.write(self.fd, (json.dumps(line) + "\n").encode())

    def lines(self) -> list[dict[str, Any]]:
        return checker.read_history(self.path)


class Tail:
    """The lines appended to the history since the last read (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = []
        for raw in data[:end].splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return lines


@dataclass
class Campaign:
    seconds: float
    seed: int
    out: Path
    drain: float = 240.0
    hosts: dict[str, net.Host] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.hosts = {
            name: net.Host(name, f"{net.SUBNET}.{octet}") for name, octet in HOSTS.items()
        }
        self.history = History(self.out / "history.jsonl")
        # the clusters' folders must be reachable by the postgres user,
        # whatever the parents of `out`
        self.pg_root = Path(tempfile.mkdtemp(prefix="cvcamp-pg-"))
        os.chmod(self.pg_root, 0o755)
        self.primary = Cluster(self.hosts["db1"], self.pg_root / "pg" / "db1")
        self.replica = Cluster(self.hosts["db2"], self.pg_root / "pg" / "db2")
        self.servers: dict[str, Proc] = {}
        self.workers: dict[str, Proc] = {}
        self.proxy: Proc | None = None
        self.skew: dict[str, int] = {}
        self.key = ""
        self.stop_load = threading.Event()
        # one database fault at a time (a failover rebuilds the replica after)
        self.db_busy = threading.Lock()
        self.heals: list[tuple[float, str, Any]] = []
        self.heals_lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.triggered = 0
        self.cancels: list[tuple[float, str]] = []
        self.cancels_lock = threading.Lock()
        self.completed_tokens: set[str] = set()
        self.fault_tail = Tail(self.history.path)
        self.recent: deque[dict[str, Any]] = deque(maxlen=400)

    # -- the cluster -----------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        hosts = ",".join(f"{self.hosts[h].ip}:5432" for h in ("db1", "db2"))
        return f"postgresql://postgres@{hosts}/conveyor?target_session_attrs=read-write&connect_timeout=3"

    def api_url(self, server: str) -> str:
        return f"http://{self.hosts[server].ip}:{PORT}"

    def start_database(self) -> None:
        (self.pg_root / "pg").mkdir()
        shutil.chown(self.pg_root / "pg", "postgres", "postgres")
        self.primary.initdb(net.SUBNET)
        self.primary.start()
        self.primary.sql("CREATE DATABASE conveyor")
        self.replica.basebackup(self.primary, net.SUBNET)
        self.replica.start()
        self.primary.wait_streaming()
        self.primary.synchronous(True)  # an acknowledged commit is on both: a failover loses none

    def start_servers(self) -> None:
        for name in ("srv1", "srv2"):
            self.servers[name] = Proc(
                name,
                self.hosts[name],
                conveyor(
                    "server",
                    "--host",
                    self.hosts[name].ip,
                    "--port",
                    str(PORT),
                    "--worker-timeout",
                    str(WORKER_TIMEOUT),
                ),
                self.out,
                env={"CONVEYOR_DATABASE_URL": self.database_url},
            )
        first = self.servers["srv1"].start(ready="Ctrl-C")
        self.servers["srv2"].start(ready="Ctrl-C")
        from conveyor import Client

        with Client(self.api_url("srv1"), TOKEN.findall(first)[0]) as admin:
            admin.projects.create("Campaign")
            self.key = admin.projects.key("campaign", "prod").secret_key
        self.primary.sql(
            f"UPDATE environments SET concurrency_limit = {ENV_LIMIT} WHERE kind = 'prod'",
            db="conveyor",
        )

    def start_workers(self) -> None:
        project = self.out / "project"
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
        delay = self.out / "delay"
        delay.write_text("0")
        self.proxy = Proc(
            "proxy",
            self.hosts[DELAYED],
            [
                sys.executable,
                "-m",
                "tests.campaign.proxy",
                str(PROXY_PORT),
                self.hosts[SERVER_OF[DELAYED]].ip,
                str(PORT),
                str(delay),
            ],
            self.out,
        )
        self.proxy.start()
        for name, server in SERVER_OF.items():
            url = f"http://127.0.0.1:{PROXY_PORT}" if name == DELAYED else self.api_url(server)
            self.workers[name] = Proc(
                name,
                self.hosts[name],
                conveyor("worker", "--name", name, "--executors", str(EXECUTORS)),
                self.out,
                cwd=project,
                env={
                    "CONVEYOR_API_URL": url,
                    "CONVEYOR_SECRET_KEY": self.key,
                    "CAMPAIGN_HISTORY": str(self.history.path),
                    "CAMPAIGN_HOST": name,
                },
            )
            self.workers[name].start(ready="Loaded tasks")

    def stop_all(self) -> None:
        for proc in [*self.workers.values(), *self.servers.values()]:
            proc.stop(timeout=10)
        if self.proxy is not None:
            self.proxy.kill9()
        for cluster in (self.primary, self.replica):
            cluster.stop("immediate")
            if cluster.log.exists():
                shutil.copy(cluster.log, self.out / cluster.log.name)
        shutil.rmtree(self.pg_root, ignore_errors=True)

    # -- the load --------------------------------------------------------------------------

    def client(self, server: str) -> Any:
        from conveyor import Client

        return Client(self.api_url(server), self.key, timeout=10)

    def send(self, what: str, call: Any, timeout: float = 120) -> Any:
        """`call(client)` through either server, again and again until one answers (a server may
        be dead, cut off from the database, or failing over)."""
        from conveyor.errors import Conflict, ConveyorError, InvalidRequest, NotFound

        deadline = time.monotonic() + timeout
        attempt = 0
        last: Exception | None = None
        while time.monotonic() < deadline:
            server = ("srv1", "srv2")[(attempt + self.rng.randrange(2)) % 2]
            attempt += 1
            try:
                with self.client(server) as client:
                    return call(client)
            except (Conflict, InvalidRequest, NotFound):
                raise  # an answer: sending it again would get the same
            except (ConveyorError, OSError) as exc:
                last = exc
                time.sleep(min(2.0, 0.2 * attempt))
        raise RuntimeError(f"{what}: no server answered in {timeout}s ({last})")

    def trigger(self, n: int, rng: random.Random) -> None:
        kind = rng.choices(
            ["limited", "steps", "fanout", "wait", "token", "long"], [4, 2, 1, 1, 1, 1]
        )[0]
        task, payload = {
            "limited": ("camp-limited", {"seconds": round(rng.uniform(0.3, 2.0), 2)}),
            "steps": ("camp-steps", {"steps": 3, "seconds": round(rng.uniform(0.1, 0.6), 2)}),
            "fanout": (
                "camp-fanout",
                {"children": [round(rng.uniform(0.2, 1.0), 2) for _ in range(3)]},
            ),
            "wait": ("camp-wait", {"seconds": rng.choice([1.0, 2.0, 7.0, 9.0])}),
            "token": ("camp-token", {}),
            "long": ("camp-long", {"steps": 40, "seconds": 0.3}),
        }[kind]
        key = f"campaign-{self.seed}-{n}"
        try:
            handle = self.send(
                f"trigger {key}", lambda c: c.trigger(task, payload, idempotency_key=key)
            )
        except RuntimeError as exc:
            self.history.record("trigger-failed", key=key, task=task, error=str(exc))
            return
        self.triggered += 1
        self.history.record("trigger", key=key, task=task, run=handle.id)
        if kind == "long":
            with self.cancels_lock:
                self.cancels.append((time.monotonic() + rng.uniform(1.0, 6.0), handle.id))

    def load(self) -> None:
        rng = random.Random(self.seed * 7 + 1)
        n = 0
        while not self.stop_load.is_set():
            self.trigger(n, rng)
            n += 1
            time.sleep(rng.uniform(0.2, 0.6))

    def cancel_due(self) -> None:
        now = time.monotonic()
        with self.cancels_lock:
            due = [c for c in self.cancels if c[0] <= now]
            self.cancels = [c for c in self.cancels if c[0] > now]
        from conveyor.errors import ConveyorError

        for _, run_id in due:
            try:
                run = self.send(
                    f"cancel {run_id}", lambda c, r=run_id: c.runs.cancel(r), timeout=30
                )
            except (
                RuntimeError,
                ConveyorError,
            ) as exc:  # it ended first (409), or no server answered
                self.history.record("cancel-failed", run=run_id, error=str(exc))
                continue
            self.history.record("cancel", run=run_id, status=run.status.value)

    def complete_tokens(self, lines: list[dict[str, Any]]) -> None:
        from conveyor.errors import ConveyorError

        for line in lines:
            token = line.get("token")
            if line["k"] != "token" or token in self.completed_tokens:
                continue
            if time.monotonic() - line["mono"] < 0.5:
                continue
            try:
                self.send(
                    f"complete {token}",
                    lambda c, t=token: c.waitpoints.complete_token(t, {"by": "driver"}),
                    timeout=20,
                )
            except RuntimeError:
                continue  # no server answered: again at the next round
            except ConveyorError as exc:  # refused (completed already, say): an answer all the same
                self.history.record("token-refused", run=line["run"], token=token, error=str(exc))
                self.completed_tokens.add(token)
                continue
            self.completed_tokens.add(token)
            self.history.record("token-complete", run=line["run"], token=token)

    def helpers(self) -> None:
        """Cancels due runs and completes tokens bodies made, until the drain is over."""
        tail = Tail(self.history.path)
        tokens: list[dict[str, Any]] = []
        while not self.stop_helpers.is_set():
            try:
                self.cancel_due()
                tokens += [line for line in tail.read() if line["k"] == "token"]
                self.complete_tokens(tokens)
                tokens = [line for line in tokens if line["token"] not in self.completed_tokens]
            except Exception as exc:  # the driver keeps driving; the checker judges the outcome
                print(f"helpers: {exc!r}", flush=True)
            time.sleep(0.5)

    # -- the faults ------------------------------------------------------------------------

    def later(self, seconds: float, what: str, action: Any) -> None:
        with self.heals_lock:
            self.heals.append((time.monotonic() + seconds, what, action))

    def run_heals(self, everything: bool = False) -> None:
        now = time.monotonic()
        with self.heals_lock:
            due = [h for h in self.heals if everything or h[0] <= now]
            self.heals = [h for h in self.heals if not (everything or h[0] <= now)]
        for _, what, action in sorted(due, key=lambda h: h[0]):
            try:
                action()
                self.history.record("heal", what=what)
            except Exception as exc:
                print(f"heal {what} failed: {exc}", flush=True)
                self.history.record("heal-failed", what=what, error=str(exc))
                # its server was away (a worker exits then): again soon
                if what.startswith("start "):
                    self.later(2.0, what, action)

    def fault(self, kind: str, rng: random.Random) -> None:
        """Inject one fault of `kind`; what ends it is scheduled with `later`."""
        worker = rng.choice(sorted(self.workers))
        server = rng.choice(sorted(self.servers))
        hosts: list[str] = []
        detail: dict[str, Any] = {}
        if kind == "kill-worker":
            busy = self.busy_workers()
            worker = rng.choice(busy) if busy else worker
            self.workers[worker].kill9()
            hosts = [worker]
            self.later(
                rng.uniform(0.5, 4), f"start {worker}", lambda w=worker: self.restart_worker(w)
            )
        elif kind == "kill-executor":
            pids = self.busy_executors()
            if not pids:
                return
            host, pid = rng.choice(pids)
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                return
            hosts, detail = [host], {"pid": pid}
        elif kind == "kill-server":
            self.servers[server].kill9()
            hosts = [server]
            self.later(
                rng.uniform(1, 6),
                f"start {server}",
                lambda s=server: self.servers[s].start(ready="Ctrl-C"),
            )
        elif kind in ("partition-worker-server", "lossy-link"):
            target = self.hosts[SERVER_OF[worker]]
            loss = rng.choice([20, 50]) if kind == "lossy-link" else None
            if self.net_busy(worker):
                return
            net.cut(self.hosts[worker], [target], loss_percent=loss)
            hosts, detail = [worker, target.name], {"loss": loss}
            self.later(
                rng.uniform(2, 20), f"heal {worker}", lambda w=worker: net.heal(self.hosts[w])
            )
        elif kind == "partition-server-db":
            if self.net_busy(server):
                return
            net.cut(self.hosts[server], [self.hosts["db1"], self.hosts["db2"]])
            hosts = [server, "db1", "db2"]
            self.later(
                rng.uniform(2, 15), f"heal {server}", lambda s=server: net.heal(self.hosts[s])
            )
        elif kind == "delay":
            seconds = round(rng.uniform(0.1, 1.5), 2)
            (self.out / "delay").write_text(str(seconds))
            hosts, detail = [DELAYED], {"seconds": seconds}
            self.later(
                rng.uniform(4, 15), "delay off", lambda: (self.out / "delay").write_text("0")
            )
        elif kind in ("pg-restart", "failover"):
            if not self.db_busy.acquire(blocking=False):
                return
            hosts = [self.primary.host.name]
            if kind == "pg-restart":
                self.primary.restart()
                self.db_busy.release()
            else:
                self.failover()
        elif kind == "clock-skew":
            offset = rng.choice([-1, 1]) * rng.randint(30, 300) if not self.skew.get(worker) else 0
            self.skew[worker] = offset
            self.workers[worker].stop(timeout=10)  # a graceful stop: it kills its executors first
            try:
                self.restart_worker(worker)
            except RuntimeError:  # its server is away: started again soon, skewed
                self.later(2.0, f"start {worker}", lambda w=worker: self.restart_worker(w))
            hosts, detail = [worker], {"offset": offset}
        self.faults[kind] += 1
        self.history.record("fault", kind=kind, hosts=hosts, **detail)

    def net_busy(self, host: str) -> bool:
        with self.heals_lock:
            return any(what == f"heal {host}" for _, what, _ in self.heals)

    def restart_worker(self, name: str) -> None:
        self.workers[name].start(ready="Loaded tasks", extra_env=skewed(self.skew.get(name, 0)))

    def failover(self) -> None:
        """The primary dies; the replica is promoted and the servers find it by the URL's second
        host. The old primary comes back later as the new replica (a fresh pg_basebackup)."""
        old, new = self.primary, self.replica
        old.stop("immediate")
        new.promote()
        new.synchronous(False)  # no replica yet: commits must not wait for one
        self.primary, self.replica = new, old

        def rebuild() -> None:
            try:
                old.basebackup(new, net.SUBNET)
                old.start()
                new.wait_streaming()
                new.synchronous(True)
            finally:
                self.db_busy.release()

        self.later(self.rng.uniform(3, 8), "replica rebuilt", rebuild)

    def recent_lines(self, seconds: float = 1.0) -> list[dict[str, Any]]:
        self.recent.extend(self.fault_tail.read())
        lines = list(self.recent)
        now = time.monotonic()
        return [
            line
            for line in lines
            if now - line["mono"] < seconds and line["k"] in ("tick", "step", "start")
        ]

    def busy_workers(self) -> list[str]:
        return sorted(
            {line["host"] for line in self.recent_lines() if line["host"] in self.workers}
        )

    def busy_executors(self) -> list[tuple[str, int]]:
        return sorted(
            {
                (line["host"], line["pid"])
                for line in self.recent_lines()
                if line["host"] in self.workers
            }
        )

    def faults_loop(self, until: float) -> None:
        rng = random.Random(self.seed * 7 + 2)
        kinds, weights = list(FAULTS), list(FAULTS.values())
        time.sleep(min(5.0, self.seconds / 10))  # the load gets going first
        next_fault = time.monotonic()
        while time.monotonic() < until:
            self.run_heals()
            if time.monotonic() >= next_fault:
                kind = rng.choices(kinds, weights)[0]
                try:
                    self.fault(kind, rng)
                except Exception as exc:
                    print(f"fault {kind} failed: {exc}", flush=True)
                    self.history.record("fault-failed", kind=kind, error=str(exc))
                next_fault = time.monotonic() + rng.uniform(1.5, 6.0)
            time.sleep(0.1)

    def heal_everything(self) -> None:
        self.run_heals(everything=True)
        for name in self.hosts:
            if name != "hub":
                net.heal(self.hosts[name])
        (self.out / "delay").write_text("0")
        for server in self.servers.values():
            if not server.alive:
                server.start(ready="Ctrl-C")
        for name, worker in self.workers.items():
            if self.skew.get(name):
                self.skew[name] = 0
                worker.stop(timeout=10)
            for _ in range(5):
                if worker.alive:
                    break
                try:
                    self.restart_worker(name)
                except RuntimeError as exc:
                    print(f"restart {name}: {exc}", flush=True)
                    time.sleep(2)

    # -- the end ---------------------------------------------------------------------------

    def query(self, sql: str) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]

    def settled(self) -> bool:
        final = ", ".join(f"'{status}'" for status in FINAL)
        rows = self.query(
            f"SELECT count(*) AS n FROM runs WHERE status NOT IN ({final}) OR hook IS NOT NULL"
        )
        return rows[0]["n"] == 0

    def drain_and_snapshot(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.drain
        while time.monotonic() < deadline:
            try:
                if self.settled():
                    break
            except Exception as exc:
                print(f"drain: {exc}", flush=True)
            time.sleep(1.0)
        return self.query(
            "SELECT id, task_id, status, attempt_count, parent_id, idempotency_key, hooks, hook "
            "FROM runs ORDER BY id"
        )

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.start_database()
        print(f"[{time.monotonic() - started:6.1f}s] database primary and replica up", flush=True)
        self.start_servers()
        print(f"[{time.monotonic() - started:6.1f}s] servers up", flush=True)
        self.start_workers()
        print(
            f"[{time.monotonic() - started:6.1f}s] workers up; load and faults for "
            f"{self.seconds:g}s",
            flush=True,
        )
        self.history.record(
            "begin",
            seed=self.seed,
            seconds=self.seconds,
            worker_timeout=WORKER_TIMEOUT,
            env_limit=ENV_LIMIT,
            queue_limits=QUEUE_LIMITS,
            server_of=SERVER_OF,
        )
        self.stop_helpers = threading.Event()
        loader = threading.Thread(target=self.load, daemon=True)
        helper = threading.Thread(target=self.helpers, daemon=True)
        loader.start()
        helper.start()
        self.faults_loop(until=time.monotonic() + self.seconds)
        self.stop_load.set()
        loader.join(timeout=180)
        print(f"[{time.monotonic() - started:6.1f}s] healing", flush=True)
        self.heal_everything()
        self.history.record("healed")
        print(f"[{time.monotonic() - started:6.1f}s] draining", flush=True)
        runs = self.drain_and_snapshot()
        print(f"[{time.monotonic() - started:6.1f}s] drained; checking", flush=True)
        self.stop_helpers.set()
        helper.join(timeout=60)
        self.history.record("end")
        (self.out / "final.json").write_text(json.dumps(runs, indent=1, default=str))
        report = checker.check(
            self.history.lines(), runs, env_limit=ENV_LIMIT, queue_limits=QUEUE_LIMITS
        )
        report["figures"]["seconds"] = round(time.monotonic() - started, 1)
        report["figures"]["seed"] = self.seed
        report["figures"]["faults"] = dict(sorted(self.faults.items()))
        return report


def inside(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, stopped)
    out = Path(args.out)
    campaign = Campaign(args.seconds, args.seed, out)
    try:
        report = campaign.run()
    finally:
        try:
            campaign.stop_all()
        except Exception as exc:
            print(f"stopping: {exc}", flush=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(checker.summary(report), flush=True)
    return 1 if report["violations"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.campaign.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CONVEYOR_CAMPAIGN_SECONDS", 120))
    )
    parser.add_argument(
        "--seed", type=int, default=int(os.environ.get("CONVEYOR_CAMPAIGN_SEED", 1))
    )
    parser.add_argument(
        "--out", required=True, help="a folder for the history, the logs and the report"
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        print("error: the campaign makes network namespaces: run it as root", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o755)
    left = net.clean()
    # clusters of a crashed run (now killed)
    for stale in Path(tempfile.gettempdir()).glob("cvcamp-pg-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if left:
        print(f"removed {len(left)} namespaces of an earlier run", flush=True)
    try:
        net.probe()
        net.build({name: octet for name, octet in HOSTS.items()})
    except (net.NetnsUnavailable, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        net.clean()
        return 2
    signal.signal(signal.SIGTERM, stopped)
    campaign: subprocess.Popen[bytes] | None = None
    try:
        command = net.Host("drv", "").cmd(
            sys.executable,
            "-m",
            "tests.campaign.run",
            "--inside",
            "--seconds",
            str(args.seconds),
            "--seed",
            str(args.seed),
            "--out",
            str(out),
        )
        campaign = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        return campaign.wait()
    finally:
        # stopped from outside: it stops its processes
        if campaign is not None and campaign.poll() is None:
            campaign.terminate()
            try:
                campaign.wait(60)
            except subprocess.TimeoutExpired:
                campaign.kill()
        net.clean()


def stopped(signum: int, frame: Any) -> None:
    """SIGTERM: stop as Ctrl-C would, through the `finally` blocks that stop processes and
    remove the namespaces."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
