"""Private PostgreSQL clusters on campaign hosts: a primary and a streaming replica made with
pg_basebackup, run as the `postgres` user, in data folders of the campaign's own. The machine's
own PostgreSQL is never touched (each cluster listens only inside its host's namespace)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.campaign.net import Host

BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 5432


def as_postgres(
    host: Host, *args: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        host.cmd("runuser", "-u", "postgres", "--", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:2])} on {host.name} failed: {(done.stderr or done.stdout).strip()}"
        )
    return done


@dataclass
class Cluster:
    host: Host
    data: Path

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.host.name}-postgres.log"

    def initdb(self, subnet: str) -> None:
        self._fresh_dir()
        as_postgres(
            self.host,
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )
        self._configure(subnet)

    def basebackup(self, primary: Cluster, subnet: str) -> None:
        """Become a streaming replica of `primary`."""
        self._fresh_dir()
        as_postgres(
            self.host,
            str(BIN / "pg_basebackup"),
            "-h",
            primary.host.ip,
            "-p",
            str(PORT),
            "-U",
            "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            timeout=120,
        )
        for lock in self.data.glob(".s.PGSQL.*"):  # the primary's socket files, copied along
            lock.unlink()
        self._configure(subnet)

    def _fresh_dir(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        shutil.chown(self.data, "postgres", "postgres")
        os.chmod(self.data, 0o700)

    def _configure(self, subnet: str) -> None:
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        text += (
            f"\nlisten_addresses = '{self.host.ip}'\nport = {PORT}\n"
            f"unix_socket_directories = '{self.data}'\n"
            "max_connections = 200\nfsync = off\nfull_page_writes = off\nwal_level = replica\n"
            "max_wal_senders = 5\nhot_standby = on\nwal_keep_size = '256MB'\n"
        )
        conf.write_text(text)
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            hba.read_text() + f"\nhost all all {subnet}.0/24 trust\n"
            f"host replication all {subnet}.0/24 trust\n"
        )

    def start(self) -> None:
        as_postgres(
            self.host,
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )

    def stop(self, mode: str = "fast") -> None:
        as_postgres(
            self.host,
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
            timeout=90,
            check=False,
        )

    def restart(self) -> None:
        as_postgres(
            self.host,
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
            timeout=120,
        )

    def promote(self) -> None:
        as_postgres(
            self.host,
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "promote",
            timeout=90,
        )

    def sql(self, statement: str, db: str = "postgres") -> str:
        out = as_postgres(
            self.host,
            str(BIN / "psql"),
            "-h",
            str(self.data),
            "-p",
            str(PORT),
            "-d",
            db,
            "-AtXq",
            "-c",
            statement,
            timeout=30,
        )
        return out.stdout.strip()

    def synchronous(self, on: bool) -> None:
        """Commits wait for the replica (on) or not (off: no replica to wait for)."""
        self.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{'*' if on else ''}'")
        self.sql("SELECT pg_reload_conf()")

    def streaming_replicas(self) -> int:
        return int(
            self.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") or 0
        )

    def wait_streaming(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.streaming_replicas() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica streams from {self.host.name}")
            time.sleep(0.2)
