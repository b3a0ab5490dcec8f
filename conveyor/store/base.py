"""The store's interface: transactions that run named queries, and versioned migrations."""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

Row = dict[str, Any]

log = logging.getLogger("conveyor.store")


class Tx(abc.ABC):
    """One transaction. Runs named queries from queries.sql; nothing else."""

    _after_commit: list[Callable[[], None]] | None = None

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once this transaction has committed, never when it is undone: for
        what must happen once per change even when a transaction is tried again (counting a
        finished run in the metrics, say). A callback that raises is logged and skipped."""
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(callback)

    def committed(self) -> None:
        """Run the callbacks of `after_commit` (the store calls it after the commit)."""
        for callback in self._after_commit or ():
            try:
                callback()
            except Exception:
                log.exception("a callback after a commit failed")
        self._after_commit = None

    @abc.abstractmethod
    def all(self, query: str, /, **params: Any) -> list[Row]:
        """Every row the query returns."""

    def one(self, query: str, /, **params: Any) -> Row | None:
        """The first row the query returns, or None."""
        rows = self.all(query, **params)
        return rows[0] if rows else None

    @abc.abstractmethod
    def run(self, query: str, /, **params: Any) -> int:
        """Run a statement; the number of rows it changed."""

    @abc.abstractmethod
    def run_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        """Run a statement once per parameter set."""

    def lock(self, key: str) -> None:  # noqa: B027 - a single-writer database needs nothing
        """Hold `key` until this transaction ends; another transaction locking the same key
        waits. The engine locks an environment before it reads runs it is going to change."""

    def try_lock(self, key: str) -> bool:
        """Lock `key` if nobody holds it; False (and no lock) otherwise."""
        return True


class Store(abc.ABC):
    """A database holding Conveyor's state."""

    dialect: str
    # whether other processes write at the same time (PostgreSQL), so that locks in one
    # transaction can make another skip rows rather than wait for them
    concurrent_writers: bool = False
    # times a transaction failed because the database could not be reached (StoreUnavailable)
    failures: int = 0
    # told the seconds each write transaction took, its commit included (the server's metrics)
    on_transaction: Callable[[float], None] | None = None

    def _finished(self, tx: Tx, started: float) -> None:
        """A write transaction begun at `started` (perf_counter) has committed."""
        if self.on_transaction is not None:
            self.on_transaction(time.perf_counter() - started)
        tx.committed()

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction: everything in it commits together or not at all."""

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractContextManager[Tx]:
        """A read-only snapshot."""

    @abc.abstractmethod
    def _apply_migration(self, version: int, sql: str) -> None: ...

    @abc.abstractmethod
    def _applied_versions(self) -> set[int]: ...

    def check(self) -> None:
        """Return when the database answers; StoreUnavailable when it cannot be reached."""
        with self.read():
            pass

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Release connections."""

    def publish(self, message: str) -> None:  # noqa: B027 - one process: nobody else to tell
        """Tell every other process using this database about `message` (see `listen`)."""

    def listen(self, callback: Callable[[str], None]) -> None:  # noqa: B027
        """Call `callback(message)` for each message another process publishes, and with ""
        when messages may have been missed (a reconnect)."""

    def migrate(self) -> list[int]:
        """Apply every migration not applied yet, in order; the versions applied now."""
        applied = self._applied_versions()
        done = []
        for version, sql in migrations(self.dialect):
            if version not in applied:
                self._apply_migration(version, sql)
                done.append(version)
        return done


def migrations(dialect: str | None = None) -> Iterator[tuple[int, str]]:
    """(version, sql) of every migration file, in order. Files are named NNNN_what.sql, or
    NNNN_what.postgres.sql (.sqlite.sql) for a change only one database needs: for the other
    dialect its sql is empty, so the version is still recorded as applied."""
    folder = files("conveyor.store").joinpath("migrations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            only = (
                entry.name.removesuffix(".sql").rpartition(".")[2]
                if entry.name.count(".") > 1
                else None
            )
            sql = (
                ""
                if dialect is not None and only is not None and only != dialect
                else entry.read_text()
            )
            yield int(entry.name.split("_", 1)[0]), sql
