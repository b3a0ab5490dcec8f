"""The only place with SQL: the schema, named queries, migrations, and the database backends.

`open_store(url)` gives a `Store` for a SQLite path or a `postgresql://` URL. The engine runs
named queries inside `store.transaction()`; it never writes SQL of its own.
"""

from conveyor.store.base import Row, Store, Tx, open_store

__all__ = ["Row", "Store", "Tx", "open_store"]
