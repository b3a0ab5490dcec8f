"""The named queries of conveyor/store/queries.sql: each is described, compiles on the database
it runs on (SQLite, and PostgreSQL with its `[postgres]` variant where one exists), and is run
somewhere in conveyor/; every query name the code runs is defined there.

Query calls are read from the code itself: a call of `all`, `one`, `run` or `run_many` on a
transaction named `tx`, whose first argument is the query's name, written out as a string.
"""

from __future__ import annotations

import ast
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.store.queries import Query, _parse, all_queries, bind
from conveyor.store.sqlite import SqliteStore
from tests.databases import postgres_schema

PACKAGE = Path(__file__).resolve().parents[2] / "conveyor"
QUERY_FILES = sorted((PACKAGE / "store").glob("*.sql"))  # queries.sql, schedules.sql
QUERY_METHODS = {"all", "one", "run", "run_many"}
TRANSACTION = re.compile(r"(^|[._])tx$")


def query_calls() -> Iterator[tuple[str, int, ast.expr]]:
    """(file, line, first argument) of every query call in conveyor/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in QUERY_METHODS
                and TRANSACTION.search(ast.unparse(node.func.value))
                and node.args
            ):
                yield str(path.relative_to(PACKAGE.parent)), node.lineno, node.args[0]


def used_names() -> set[str]:
    return {
        arg.value
        for _, _, arg in query_calls()
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def defined_names() -> set[str]:
    return {name for name, _ in all_queries()}


def test_the_code_runs_queries_and_the_file_defines_them() -> None:
    # the scans below find something: a change of how queries are called must change them too
    assert len(used_names()) > 100
    assert len(defined_names()) > 100


def test_query_names_in_calls_are_written_out() -> None:
    computed = [
        f"{file}:{line}: {ast.unparse(arg)}"
        for file, line, arg in query_calls()
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    ]
    assert not computed, (
        "query names must be string literals, so they can be checked:\n" + "\n".join(computed)
    )


def test_every_query_the_code_runs_is_defined() -> None:
    missing = [
        f"{file}:{line}: {arg.value!r}"
        for file, line, arg in query_calls()
        if isinstance(arg, ast.Constant) and arg.value not in defined_names()
    ]
    assert not missing, "queries.sql defines none of:\n" + "\n".join(missing)


def test_every_defined_query_is_run_by_the_code() -> None:
    unused = sorted(defined_names() - used_names())
    assert not unused, f"queries.sql defines queries nothing runs: {unused}"


def test_each_name_is_defined_once_per_database() -> None:
    text = "\n".join(path.read_text() for path in QUERY_FILES)
    headers = re.findall(r"^-- name: (\w+)(?: \[(\w+)\])?\s*$", text, re.MULTILINE)
    repeated = sorted({h for h in headers if headers.count(h) > 1})
    assert not repeated, f"defined more than once (the last would win): {repeated}"
    assert len(headers) == len(all_queries())


def test_every_query_is_described_and_not_empty() -> None:
    for (name, dialect), query in all_queries().items():
        assert query.sql, name
        if dialect == "any":  # a variant shares the description of its plain query
            assert query.description, f"{name} has no one-line description"


def test_variants_are_of_a_known_database_and_take_the_plain_querys_parameters() -> None:
    queries = all_queries()
    for (name, dialect), query in queries.items():
        if dialect == "any":
            continue
        assert dialect in ("postgres", "sqlite"), (name, dialect)
        assert (name, "any") in queries, f"{name} [{dialect}] has no plain query"
        assert set(query.params) == set(queries[(name, "any")].params), name


def for_dialect(dialect: str) -> list[Query]:
    """Each query as the given database runs it (its variant, else the plain one)."""
    queries = all_queries()
    return [
        queries.get((name, dialect)) or queries[(name, "any")]
        for name in sorted({name for name, _ in queries})
    ]


def broken_query() -> Query:
    return _parse(
        "-- name: broken\n-- No such table.\nSELECT id FROM no_such_table WHERE id = :id;"
    )[("broken", "any")]


def compile_on_sqlite(conn: sqlite3.Connection, query: Query) -> None:
    sql, values = bind(query, {p: None for p in query.params}, "named")
    conn.execute("EXPLAIN " + sql, values)  # compiled against the schema, not run


def test_every_query_compiles_on_sqlite(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "conveyor.db"))
    store.migrate()
    failures = []
    with store.read() as tx:
        conn: sqlite3.Connection = tx._conn  # type: ignore[attr-defined]
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            compile_on_sqlite(conn, broken_query())  # the check tells a bad query
        for query in for_dialect("sqlite"):
            try:
                compile_on_sqlite(conn, query)
            except sqlite3.Error as exc:
                failures.append(f"{query.name}: {exc}")
    store.close()
    assert not failures, "\n".join(failures)


def test_every_query_compiles_on_postgres() -> None:
    import psycopg

    from conveyor.store.postgres import PostgresStore

    def compile_on_postgres(conn: psycopg.Connection[tuple[object, ...]], query: Query) -> None:
        text, values = bind(query, {p: None for p in query.params}, "pyformat")
        with conn.transaction():  # a failure rolls back to here, and the next query goes on
            conn.execute("EXPLAIN " + text, values)  # planned against the schema, not run

    with postgres_schema() as url:
        store = PostgresStore(url)
        store.migrate()
        store.close()
        failures = []
        with store._connect() as conn:  # a connection as the store makes them
            with pytest.raises(psycopg.errors.UndefinedTable):
                compile_on_postgres(conn, broken_query())  # the check tells a bad query
            for query in for_dialect("postgres"):
                try:
                    compile_on_postgres(conn, query)
                except psycopg.Error as exc:
                    failures.append(f"{query.name}: {exc}")
        assert not failures, "\n".join(failures)


def test_parameters_bind_on_postgres() -> None:
    """The binds of tests/unit/test_query_binding.py, run on a real PostgreSQL."""
    from conveyor.store.postgres import PostgresStore

    def query(sql: str) -> Query:
        return _parse(f"-- name: q\n-- A query of this test.\n{sql};\n")[("q", "any")]

    with postgres_schema() as url:
        store = PostgresStore(url)
        store.close()
        with store._connect() as conn:  # a connection as the store makes them (its text dumper)
            conn.autocommit = True

            def ids(q: Query, **params: object) -> list[int]:
                text, values = bind(q, params, "pyformat")
                return [row["id"] for row in conn.execute(text, values)]

            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            insert = query("INSERT INTO t (id, name) VALUES (:id, :name)")
            rows: list[dict[str, object]] = [
                {"id": 1, "name": None},  # the first row's None does not become NULL in the text
                {"id": 2, "name": "a%b"},
                {"id": 3, "name": "ab"},
            ]
            text, _ = bind(insert, rows[0], "pyformat", inline_nulls=False)
            with conn.cursor() as cursor:
                cursor.executemany(text, rows)

            in_list = query("SELECT id FROM t WHERE id IN (:ids) ORDER BY id")
            assert ids(in_list, ids=[3, 1]) == [1, 3]
            assert ids(in_list, ids=[]) == []
            assert ids(in_list, ids=[2, None]) == [2]
            optional = query("SELECT id FROM t WHERE (:name IS NULL OR name = :name) ORDER BY id")
            assert ids(optional, name=None) == [1, 2, 3]  # `$1 IS NULL` alone could not be typed
            assert ids(optional, name="ab") == [3]
            like = query("SELECT id FROM t WHERE name LIKE 'a%' AND id > :low::int ORDER BY id")
            assert like.params == ("low",)
            assert ids(like, low=2) == [3]
