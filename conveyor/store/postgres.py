"""PostgreSQL backend: for many servers and workers on many machines.

A pool of psycopg 3 connections (conveyor/store/pool.py); every transaction checks its
connection out and back in, a connection PostgreSQL dropped (a restart, a failover) is replaced,
not reused, and while the database cannot be reached every transaction fails at once with
StoreUnavailable (a 503) rather than waiting. Values are sent
apart from the SQL and each connection prepares the statements it runs again, so the hot
queries (trigger, lease, complete) are planned once per connection, not once per call.

Two things SQLite gets for free from having one writer are explicit here:
- `Tx.lock(key)`: a transaction-scoped advisory lock, so the engine's read-then-write steps on
  one environment's runs see a state nobody else is changing (see engine/transitions.py).
- `publish`/`listen`: LISTEN/NOTIFY, so a change made by one server wakes the long polls of
  workers connected to another.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg.rows import dict_row
from psycopg.types.string import StrDumper

from conveyor.errors import InvalidRequest, StoreUnavailable, TransactionConflict
from conveyor.store.base import Row, Store, Tx
from conveyor.store.pool import CONNECT_TIMEOUT, Pool
from conveyor.store.queries import bind, get_query

log = logging.getLogger("conveyor.store")

CHANNEL = "conveyor_events"
WAKE_ALL = ""  # a notification that says "anything may have changed": every long poll wakes
OUTBOX_LIMIT = 1000  # notifications kept while they cannot be sent
RESEND_SECONDS = 0.5
PREPARE_AFTER = 2  # a statement run this often on a connection is prepared: parsed and planned once
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
# a connection fails within CONNECT_TIMEOUT when the database is away, and one cut off by the
# network (no FIN, no RST) is found dead by TCP keepalives within about 20 s
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class _PgTx(Tx):
    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def _execute(self, query: str, params: dict[str, Any]) -> psycopg.Cursor[Row]:
        text, values = bind(get_query(query, "postgres"), params, "pyformat")
        try:
            return self._conn.execute(text, values)
        except (
            psycopg.DataError
        ) as exc:  # a value PostgreSQL cannot hold, e.g. text with a NUL character
            raise InvalidRequest(
                f"a value of the request cannot be stored: {_first_line(exc)}"
            ) from exc

    def all(self, query: str, /, **params: Any) -> list[Row]:
        return self._execute(query, params).fetchall()

    def run(self, query: str, /, **params: Any) -> int:
        return self._execute(query, params).rowcount

    def run_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        text, _ = bind(get_query(query, "postgres"), rows[0], "pyformat", inline_nulls=False)
        with self._conn.cursor() as cursor:
            cursor.executemany(text, rows)

    def lock(self, key: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def try_lock(self, key: str) -> bool:
        row = self._conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok", (key,)
        ).fetchone()
        return bool(row and row["ok"])


class PostgresStore(Store):
    dialect = "postgres"
    concurrent_writers = True

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.url = url
        self._local = threading.local()
        try:  # a first connection says at once whether the URL can work at all
            first = self._connect()
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {_safe(url)}: {_first_line(exc)}"
            ) from exc
        first.close()
        self._pool = Pool(self._connect, max_size=max_size)
        self._listener: _Listener | None = None
        self._outbox: dict[str, None] = {}
        self._outbox_lock = threading.Lock()
        self._outbox_ready = threading.Event()
        self._publisher: threading.Thread | None = None
        self._closed = False

    def _connect(self) -> psycopg.Connection[Row]:
        conn = psycopg.connect(
            self.url, row_factory=dict_row, prepare_threshold=PREPARE_AFTER, **CONNECT_OPTIONS
        )
        _configure(conn)
        return conn

    def check(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1")
            conn.rollback()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except StoreUnavailable:
            self.failures += 1
            raise
        except (DeadlockDetected, SerializationFailure) as exc:  # not an outage: try again
            raise TransactionConflict(f"the database undid a change: {_first_line(exc)}") from exc
        except _CONNECTION_ERRORS as exc:
            self.failures += 1
            raise StoreUnavailable(f"the database connection failed: {_first_line(exc)}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        current = getattr(self._local, "tx", None)
        if current is not None:  # nested: part of the transaction this thread already has
            yield current
            return
        started = time.perf_counter()
        with self._connection() as conn, conn.transaction():
            tx = _PgTx(conn)
            self._local.tx = tx
            try:
                yield tx
            finally:
                self._local.tx = None
        self._finished(tx, started)

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        current = getattr(self._local, "tx", None)
        if current is not None:  # a read inside this thread's write transaction
            yield current
            return
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _PgTx(conn)

    def _applied_versions(self) -> set[int]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('conveyor:migrate'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            return {
                row["version"]
                for row in conn.execute("SELECT version FROM schema_migrations").fetchall()
            }

    def migrate(self) -> list[int]:
        # several servers may start at once: one applies the migrations, the others wait for it
        with self._connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('conveyor:migrate-all'))")
            try:
                conn.commit()
                return super().migrate()
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('conveyor:migrate-all'))")
                conn.commit()

    def _apply_migration(self, version: int, sql: str) -> None:
        with self._connection() as conn, conn.transaction():
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
            ).fetchone():
                return
            if sql.strip():
                conn.execute(sql.encode())  # a migration file: several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                (version, time.time()),
            )

    # -- events across servers -------------------------------------------------------------

    def publish(self, message: str) -> None:
        # sent from a thread of its own, so a change never waits for its notification; messages
        # queued meanwhile go out together, each once
        with self._outbox_lock:
            self._outbox[message] = None
            if self._publisher is None or not self._publisher.is_alive():
                self._publisher = threading.Thread(
                    target=self._send_outbox, name="conveyor-notify", daemon=True
                )
                self._publisher.start()
        self._outbox_ready.set()

    def _send_outbox(self) -> None:
        while not self._closed:
            self._outbox_ready.wait(1.0)
            self._outbox_ready.clear()
            with self._outbox_lock:
                messages, self._outbox = list(self._outbox), {}
            if not messages:
                continue
            try:
                with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, m) for m in messages])
            except (StoreUnavailable, psycopg.Error) as exc:
                # kept and sent again: a change another server's long polls wait on is never
                # announced to no one (past OUTBOX_LIMIT, one "wake everyone" stands for them all)
                log.warning(
                    "could not send %d notifications (%s); sending them again",
                    len(messages),
                    _first_line(exc),
                )
                with self._outbox_lock:
                    kept = dict.fromkeys(messages) | self._outbox
                    self._outbox = kept if len(kept) <= OUTBOX_LIMIT else {WAKE_ALL: None}
                self._outbox_ready.set()
                if not self._closed:
                    time.sleep(RESEND_SECONDS)

    def listen(self, callback: Callable[[str], None]) -> None:
        if self._listener is None:
            self._listener = _Listener(self.url, callback)
            self._listener.start()

    def close(self) -> None:
        self._closed = True
        self._outbox_ready.set()
        if self._publisher is not None:
            self._publisher.join(timeout=3)
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._pool.close()


class _Listener(threading.Thread):
    """LISTENs on its own connection and hands each notification to `callback`; reconnects
    after the database went away (and then says so with an empty message: anything may have
    changed while it was gone)."""

    def __init__(self, url: str, callback: Callable[[str], None]) -> None:
        super().__init__(name="conveyor-listen", daemon=True)
        self.url = url
        self.callback = callback
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def run(self) -> None:
        delay = 0.1
        lost = False  # reported once per outage, not at every attempt to reconnect
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, **CONNECT_OPTIONS) as conn:
                    self._conn = conn
                    conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(CHANNEL)))
                    self.callback("")
                    if lost:
                        log.warning("listening for other servers' changes again")
                    delay, lost = 0.1, False
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self.callback(note.payload)
            except _CONNECTION_ERRORS as exc:
                if self._stopping.is_set():
                    return
                if not lost:
                    log.warning(
                        "lost the PostgreSQL notification connection (%s); reconnecting",
                        _first_line(exc),
                    )
                lost = True
            self._conn = None
            self._stopping.wait(delay)
            delay = min(delay * 2, 2.0)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=0.5)


class _TextDumper(StrDumper):
    """Strings as `text`, not psycopg's default "unknown": in `:tag IS NULL OR tags LIKE :tag`
    PostgreSQL must know the type where it first meets the parameter (every column is TEXT).
    PostgreSQL text cannot hold a NUL character, which SQLite can: it goes as U+FFFD, so an id
    with a NUL finds nothing (as on SQLite) and a name with one is stored, rather than the
    request failing."""

    def dump(self, obj: str) -> bytes:
        return obj.replace("\x00", "\ufffd").encode(self._encoding)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(str, _TextDumper)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    with contextlib.suppress(Exception):
        info = psycopg.conninfo.conninfo_to_dict(url)
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
    return "the given URL"
