"""PostgreSQL for the postgres suite: a fresh database per system, and its write counters.

Each system gets its own database on the same server (dropped and created before it starts,
dropped after it stops), so the statistics of a database are those of one system alone. Writes
are read from PostgreSQL's cumulative statistics: rows inserted, updated and deleted
(`n_tup_ins + n_tup_upd + n_tup_del` summed over `pg_stat_user_tables`) and committed
transactions (`xact_commit` of `pg_stat_database`).

Those counters are reported asynchronously: a backend flushes what it counted at most once a
second while busy, and an idle backend holding unflushed counts flushes them after 10 s
(PostgreSQL 15's PGSTAT_IDLE_INTERVAL). A snapshot is therefore taken only after `settle`
seconds (11 by default) with the system idle, then read from a fresh statistics snapshot
(`pg_stat_clear_snapshot()`). `pg_stat_force_next_flush()` (PostgreSQL 15+) only flushes the
reading connection's own counts; it is called so the reader's counts are complete too.

It never touches a database it did not name: the names come from BENCH_PG_URL (default
postgresql://postgres@127.0.0.1:5432) plus a fixed database name per system.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SERVER_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
SETTLE_SECONDS = 11.0  # above PostgreSQL's 10 s idle flush of pending statistics


def database_url(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _maintenance_url() -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path="/postgres"))


def recreate(name: str, drop_only: bool = False) -> str:
    """Drop the database `name` (closing its connections) and create it empty; its URL."""
    import psycopg

    url = database_url(name)
    with psycopg.connect(_maintenance_url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url


def drop(name: str) -> None:
    with contextlib.suppress(Exception):
        recreate(name, drop_only=True)


def server_version() -> str:
    try:
        import psycopg

        with psycopg.connect(_maintenance_url(), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"
    except Exception as exc:
        return f"PostgreSQL ? ({exc})"


@dataclass(frozen=True)
class Counters:
    """Cumulative counts of one database at one moment."""

    inserted: int
    updated: int
    deleted: int
    commits: int
    rollbacks: int
    at: float

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.deleted

    def minus(self, earlier: Counters) -> dict[str, float]:
        return {
            "rows": self.rows - earlier.rows,
            "inserted": self.inserted - earlier.inserted,
            "updated": self.updated - earlier.updated,
            "deleted": self.deleted - earlier.deleted,
            "commits": self.commits - earlier.commits,
            "rollbacks": self.rollbacks - earlier.rollbacks,
            "window": self.at - earlier.at,
        }


def snapshot(name: str, settle: float = SETTLE_SECONDS) -> Counters:
    """The counters of database `name` after `settle` seconds (every backend's counts flushed)."""
    import psycopg

    time.sleep(settle)
    with psycopg.connect(database_url(name), autocommit=True, connect_timeout=10) as conn:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+
        conn.execute("SELECT pg_stat_clear_snapshot()")
        tables = conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), "
            "coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables"
        ).fetchone()
        db = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    assert tables is not None and db is not None
    return Counters(
        inserted=int(tables[0]),
        updated=int(tables[1]),
        deleted=int(tables[2]),
        commits=int(db[0]),
        rollbacks=int(db[1]),
        at=time.time(),
    )
