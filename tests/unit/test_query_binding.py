"""How a named query's `:name` parameters bind: as they are for SQLite ("named" style), as
`%(name)s` for psycopg ("pyformat"), lists in `IN (:x)` expanded one parameter per item, and a
None written as NULL into PostgreSQL's text. The bound SQL is run on a real SQLite here; the
same binds on a real PostgreSQL are in tests/integration/test_store_queries.py."""

from __future__ import annotations

import sqlite3

import pytest

from conveyor.store.queries import Query, _parse, bind, get_query


def query(sql: str) -> Query:
    return _parse(f"-- name: q\n-- A query of this test.\n{sql};\n")[("q", "any")]


@pytest.fixture
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a%b"), (2, "ab"), (3, None)])
    return conn


def ids(conn: sqlite3.Connection, q: Query, **params: object) -> list[int]:
    sql, values = bind(q, params, "named")
    return [row[0] for row in conn.execute(sql, values)]


def test_parameters_are_read_from_the_text_once_each_in_order() -> None:
    q = query("SELECT * FROM t WHERE id = :id OR name = :name OR id > :id")
    assert q.params == ("id", "name")


def test_casts_and_colons_inside_words_are_not_parameters() -> None:
    q = query("SELECT CAST(:a AS TEXT), :b::int, 'x:y', a:c FROM t")
    assert q.params == ("a", "b")


def test_the_description_and_comments_are_not_part_of_the_sql() -> None:
    q = _parse("-- name: q\n-- What it does.\n-- a note\nSELECT 1;\n")[("q", "any")]
    assert (q.description, q.sql) == ("What it does.", "SELECT 1")


def test_a_missing_parameter_names_the_query_and_the_parameter() -> None:
    q = query("SELECT * FROM t WHERE id = :id AND name = :name")
    for style in ("named", "pyformat"):
        with pytest.raises(KeyError, match=r"query 'q' needs parameters \['name'\]"):
            bind(q, {"id": 1}, style)


def test_sqlite_takes_the_text_and_values_as_they_are(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE id >= :low ORDER BY id")
    params: dict[str, object] = {"low": 2}
    assert bind(q, params, "named") == (q.sql, params)
    assert ids(db, q, low=2) == [2, 3]


def test_a_list_is_one_parameter_per_item(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE id IN (:ids) ORDER BY id")
    sql, values = bind(q, {"ids": [3, 1]}, "named")
    assert sql == "SELECT id FROM t WHERE id IN (:ids__0, :ids__1) ORDER BY id"
    assert values == {"ids__0": 3, "ids__1": 1}
    assert ids(db, q, ids=[3, 1]) == [1, 3]
    assert ids(db, q, ids=(2,)) == [2]  # tuples (and sets) too
    assert ids(db, q, ids={1, 2}) == [1, 2]


def test_an_empty_list_matches_nothing(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE id IN (:ids)")
    assert ids(db, q, ids=[]) == []
    q = query("SELECT id FROM t WHERE id NOT IN (:ids)")
    assert ids(db, q, ids=[]) == []  # as SQL's own NOT IN (NULL)


def test_a_list_beside_plain_parameters(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE id IN (:ids) AND id > :low ORDER BY id")
    _, values = bind(q, {"ids": [1, 2, 3], "low": 1}, "named")
    assert values == {"ids__0": 1, "ids__1": 2, "ids__2": 3, "low": 1}
    assert ids(db, q, ids=[1, 2, 3], low=1) == [2, 3]


def test_a_percent_sign_in_the_text_stays_a_percent_sign(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE name LIKE 'a%' AND id = :id")
    sql, values = bind(q, {"id": 1}, "pyformat")
    assert sql == "SELECT id FROM t WHERE name LIKE 'a%%' AND id = %(id)s"  # psycopg's escape
    assert values == {"id": 1}
    assert ids(db, q, id=1) == [1]


def test_postgres_gets_pyformat_placeholders_and_only_the_values_it_uses() -> None:
    q = query("SELECT id FROM t WHERE id = :id OR id = :id")
    assert bind(q, {"id": 1, "unused": 2}, "pyformat") == (
        "SELECT id FROM t WHERE id = %(id)s OR id = %(id)s",
        {"id": 1},
    )


def test_a_none_is_null_in_postgres_text_but_a_value_for_sqlite(db: sqlite3.Connection) -> None:
    q = query("SELECT id FROM t WHERE (:name IS NULL OR name = :name) ORDER BY id")
    assert bind(q, {"name": None}, "pyformat") == (
        "SELECT id FROM t WHERE (NULL IS NULL OR name = NULL) ORDER BY id",
        {},
    )
    assert bind(q, {"name": None}, "named") == (q.sql, {"name": None})
    assert ids(db, q, name=None) == [1, 2, 3]
    assert ids(db, q, name="ab") == [2]


def test_many_parameter_sets_keep_none_as_a_value() -> None:
    # one text serves every row of `run_many`, so a None of the first row cannot go into it
    q = query("INSERT INTO t (id, name) VALUES (:id, :name)")
    assert bind(q, {"id": 4, "name": None}, "pyformat", inline_nulls=False) == (
        "INSERT INTO t (id, name) VALUES (%(id)s, %(name)s)",
        {"id": 4, "name": None},
    )


def test_none_inside_a_list_for_postgres() -> None:
    q = query("SELECT id FROM t WHERE id IN (:ids)")
    assert bind(q, {"ids": []}, "pyformat") == ("SELECT id FROM t WHERE id IN (NULL)", {})
    assert bind(q, {"ids": [1, None]}, "pyformat") == (
        "SELECT id FROM t WHERE id IN (%(ids__0)s, NULL)",
        {"ids__0": 1},
    )


def test_a_postgres_variant_replaces_the_plain_query_there_only() -> None:
    assert get_query("lock_environment", "postgres").sql.endswith("FOR UPDATE")
    assert "FOR UPDATE" not in get_query("lock_environment", "sqlite").sql
    assert get_query("get_environment", "postgres") is get_query("get_environment", "sqlite")
    with pytest.raises(KeyError, match="no query named 'no_such_query'"):
        get_query("no_such_query", "sqlite")
