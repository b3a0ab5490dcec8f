"""Loads the named queries of the store's .sql files (queries.sql, and one file per concept:
schedules.sql, realtime.sql, ...) and turns them into each database's parameter style. A name is
defined once across the files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+)(?: \[(\w+)\])?\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<![:\w]):([a-zA-Z_]\w*)")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    description: str
    sql: str
    params: tuple[str, ...]


def _parse(text: str) -> dict[tuple[str, str], Query]:
    found: dict[tuple[str, str], Query] = {}
    headers = list(_HEADER.finditer(text))
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[match.end() : end].strip()
        lines = body.splitlines()
        description = (
            lines[0].removeprefix("--").strip() if lines and lines[0].startswith("--") else ""
        )
        sql = (
            "\n".join(line for line in lines if not line.lstrip().startswith("--"))
            .strip()
            .rstrip(";")
        )
        dialect = match.group(2) or "any"
        found[(match.group(1), dialect)] = Query(
            match.group(1), description, sql, tuple(dict.fromkeys(_PARAM.findall(sql)))
        )
    return found


@cache
def all_queries() -> dict[tuple[str, str], Query]:
    found: dict[tuple[str, str], Query] = {}
    for entry in sorted(files("conveyor.store").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            more = _parse(entry.read_text())
            twice = sorted(name for name, _ in set(found) & set(more))
            if twice:
                raise RuntimeError(f"{entry.name} defines queries defined before: {twice}")
            found |= more
    return found


def get_query(name: str, dialect: str) -> Query:
    queries = all_queries()
    query = queries.get((name, dialect)) or queries.get((name, "any"))
    if query is None:
        raise KeyError(f"no query named {name!r}")
    return query


def bind(
    query: Query, params: dict[str, object], style: str, *, inline_nulls: bool = True
) -> tuple[str, dict[str, object]]:
    """SQL text and parameters for one call: lists in `IN (:x)` are expanded to one parameter each.

    `style` is "named" (`:x`, SQLite) or "pyformat" (`%(x)s`, psycopg; a None is written as NULL
    into the text, since PostgreSQL must know every parameter's type and a None has none; not
    with `inline_nulls=False`, for a statement run with many parameter sets, where a column's
    type says it).
    """
    missing = [p for p in query.params if p not in params]
    if missing:
        raise KeyError(f"query {query.name!r} needs parameters {missing}")
    if style == "named" and not any(
        isinstance(params[p], list | tuple | set | frozenset) for p in query.params
    ):
        return (
            query.sql,
            params,
        )  # the common case: SQLite takes the text and the values as they are
    values: dict[str, object] = {}

    def placeholder(name: str, value: object) -> str:
        if style == "named":
            values[name] = value
            return f":{name}"
        if (
            value is None and inline_nulls
        ):  # PostgreSQL cannot type a parameter known only as `$1 IS NULL`
            return "NULL"
        values[name] = value
        return f"%({name})s"

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = params[name]
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value) or [None]  # `IN (NULL)` matches nothing, as an empty list should
            return ", ".join(placeholder(f"{name}__{i}", item) for i, item in enumerate(items))
        return placeholder(name, value)

    text = query.sql.replace("%", "%%") if style == "pyformat" else query.sql
    return _PARAM.sub(replace, text), values
