"""The PostgreSQL connections of one store: reused, replaced when broken, and failing fast
while the database is away.

    checkout ─▶ an idle connection (checked if idle a while) ─▶ or a new one (CONNECT_TIMEOUT)
                 └─ all max_size busy: wait up to CHECKOUT_WAIT, then StoreUnavailable
    a connect that fails ─▶ "away": every checkout raises StoreUnavailable at once, while one
                 thread tries to connect every PROBE_SECONDS; its first success ends it

psycopg_pool was measured against a stopped database: each checkout waits for its timeout
(30 s by default) and, once the database is back, its reconnection backoff (1, 2, 4 s ...)
keeps requests failing for seconds after; a request must get its 503 within 2 s and work
again as soon as the database answers, hence this small pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import pq

from conveyor.errors import StoreUnavailable

log = logging.getLogger("conveyor.store")

CONNECT_TIMEOUT = 2  # seconds; libpq's least
CHECKOUT_WAIT = 5.0  # seconds a request waits for one of max_size busy connections
CHECK_IDLE_AFTER = 1.0  # a connection idle this long is checked before use (a restart drops it)
PROBE_SECONDS = 0.5

Connection = psycopg.Connection[Any]


class Pool:
    def __init__(self, connect: Callable[[], Connection], *, max_size: int = 10) -> None:
        self._connect = connect
        self.max_size = max_size
        self._idle: list[tuple[Connection, float]] = []  # with the time each was checked in
        self._size = 0  # connections open, in use or being opened
        self._cond = threading.Condition()
        self._away: str | None = None  # why the database cannot be reached, while it cannot
        self._prober: threading.Thread | None = None
        self._closed = False

    @property
    def away(self) -> str | None:
        """Why the database is unreachable now, or None while it answers."""
        return self._away

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    def _checkout(self) -> Connection:
        deadline = time.monotonic() + CHECKOUT_WAIT
        while True:
            conn: Connection | None
            with self._cond:
                while True:
                    if self._closed:
                        raise StoreUnavailable("the database connection pool is closed")
                    if self._away is not None:
                        raise StoreUnavailable(f"the database is unreachable: {self._away}")
                    if self._idle:
                        conn, since = self._idle.pop()
                        break
                    if self._size < self.max_size:
                        self._size += 1
                        conn, since = None, 0.0
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StoreUnavailable(
                            f"all {self.max_size} database connections stayed busy "
                            f"for {CHECKOUT_WAIT:g}s"
                        )
                    self._cond.wait(remaining)
            if conn is None:
                return self._open()
            if time.monotonic() - since < CHECK_IDLE_AFTER or _alive(conn):
                return conn
            self._discard(conn)  # dropped meanwhile (a restart): the next one, or a new one

    def _open(self) -> Connection:
        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            self._went_away(exc)
            raise StoreUnavailable(f"the database is unreachable: {_first_line(exc)}") from exc
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise
        return conn

    def _checkin(self, conn: Connection) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            self._discard(conn)
            return
        with self._cond:
            if self._closed:
                self._size -= 1
                conn.close()
                return
            self._idle.append((conn, time.monotonic()))
            self._cond.notify()

    def _discard(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            conn.close()
        with self._cond:
            self._size -= 1
            self._cond.notify()

    def _went_away(self, exc: Exception) -> None:
        with self._cond:
            if self._away is None:
                log.warning(
                    "the database is unreachable (%s); answering 503 until it is back",
                    _first_line(exc),
                )
            self._away = _first_line(exc)
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            if self._prober is None or not self._prober.is_alive():
                self._prober = threading.Thread(
                    target=self._probe, name="conveyor-db-probe", daemon=True
                )
                self._prober.start()
        for conn, _ in idle:  # from before the outage: dead
            with contextlib.suppress(Exception):
                conn.close()

    def _probe(self) -> None:
        while not self._closed:
            time.sleep(PROBE_SECONDS)
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                with self._cond:
                    self._away = _first_line(exc)
                continue
            with self._cond:
                self._size += 1
                self._away = None
                self._prober = None
            log.warning("the database answers again")
            self._checkin(conn)
            return

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            with contextlib.suppress(Exception):
                conn.close()


def _alive(conn: Connection) -> bool:
    """One round trip outside any transaction."""
    try:
        conn.autocommit = True
        conn.execute("")
        conn.autocommit = False
        return True
    except psycopg.Error:
        return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
