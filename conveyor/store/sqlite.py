"""SQLite backend: the embedded default. WAL mode, one connection per thread, one writer at a time.

Writers take a process-wide lock before `BEGIN IMMEDIATE`, so threads of one process queue up
instead of spinning on SQLITE_BUSY; `busy_timeout` covers other processes (the CLI, tests).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from conveyor.store.base import Row, Store, Tx
from conveyor.store.queries import bind, get_query


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class _SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, query: str, /, **params: Any) -> list[Row]:
        sql, values = bind(get_query(query, "sqlite"), params, "named")
        return self._conn.execute(sql, values).fetchall()

    def run(self, query: str, /, **params: Any) -> int:
        sql, values = bind(get_query(query, "sqlite"), params, "named")
        return self._conn.execute(sql, values).rowcount

    def run_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        q = get_query(query, "sqlite")
        sql, _ = bind(q, rows[0], "named")
        self._conn.executemany(sql, rows)


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.row_factory = _dict_row
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._write_lock, self._conn() as conn:
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            tx = _SqliteTx(conn)
            try:
                yield tx
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._finished(tx, started)

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self._conn() as conn:
            if conn.in_transaction:  # a read inside this thread's write transaction
                yield _SqliteTx(conn)
                return
            conn.execute("BEGIN")
            try:
                yield _SqliteTx(conn)
            finally:
                conn.execute("ROLLBACK")

    def _applied_versions(self) -> set[int]:
        with self._write_lock, self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            return {
                row["version"]
                for row in conn.execute("SELECT version FROM schema_migrations").fetchall()
            }

    def _apply_migration(self, version: int, sql: str) -> None:
        with self._write_lock, self._conn() as conn:
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n;"
                    "INSERT INTO schema_migrations (version, applied_at) "
                    f"VALUES ({int(version)}, strftime('%s','now'));\nCOMMIT;"
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
