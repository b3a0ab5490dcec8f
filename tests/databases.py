"""The databases tests run on: a SQLite file, and a fresh schema in a real PostgreSQL.

PostgreSQL is found at CONVEYOR_TEST_POSTGRES_URL (default: the local server, database `test`).
When it does not answer, PostgreSQL tests are skipped on a laptop and fail under CI=true, where
they must run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import quote

import pytest

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@cache
def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} does not answer: {exc}"
    return None


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{problem}; under CI the PostgreSQL tests must run")
    pytest.skip(problem)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    require_postgres()
    import psycopg

    schema = "test_" + secrets.token_hex(6)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            # connections of processes killed by a test may linger a moment
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query LIKE %s",
                (f"%{schema}%",),
            )
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def database_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database of `kind` ("sqlite" or "postgres")."""
    if kind == "sqlite":
        yield str(folder / "conveyor.db")
    else:
        with postgres_schema() as url:
            yield url
