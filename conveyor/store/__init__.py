"""The only place with SQL: the schema, named queries, migrations, and the database backends.

`open_store(url)` gives a `Store` for a SQLite path or a `postgresql://` URL. The engine runs
named queries inside `store.transaction()`; it never writes SQL of its own.
"""

from conveyor.store.base import Row, Store, Tx

__all__ = ["Row", "Store", "Tx", "open_store"]


def open_store(url: str) -> Store:
    """A store for `postgresql://...`, `sqlite:///path`, or a plain file path (SQLite)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from conveyor.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            from conveyor.errors import ConfigError
            from conveyor.extras import install_hint

            raise ConfigError(
                f"PostgreSQL support needs the postgres extra: {install_hint('postgres')}"
            ) from exc
        return PostgresStore(url)
    from conveyor.store.sqlite import SqliteStore

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SqliteStore(path)
