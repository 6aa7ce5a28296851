"""What both SQL engines take and return, shaped in one place: their limits, the row budget's
messages, the character cap, and the ``sql_schema`` result (DuckDB's worker, ``runner``, and
PostgreSQL's ``pg_engine``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_state.errors import InvalidArgumentError, NotFoundError
from mcp_state.schema import COLUMN_DESCRIPTIONS, REDACTED_FLAG_COLUMNS, REDACTED_SCHEMA, TABLE_DESCRIPTIONS
from mcp_state.sql.guard import METADATA_VIEWS

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OUTPUT_CHARS = 50_000
DEFAULT_TIMEOUT = 10.0


def check_limit(limit: int, max_limit: int) -> int:
    """``limit`` if it is a whole number from 1 to ``max_limit``; otherwise what to pass."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_limit:
        raise InvalidArgumentError(f"limit must be a whole number from 1 to {max_limit:,}; got {limit!r}")
    return limit


def row_messages(
    more: bool, capped: bool, limit: int, returned: int, max_output_chars: int, max_limit: int
) -> str | None:
    """What to tell the caller when rows were left out (by the character cap or the limit)."""
    if capped:
        return (
            f"output capped at {max_output_chars:,} characters after {returned} rows; narrow the query: "
            "select fewer or shorter columns (left(col, 100)), aggregate, filter with WHERE, or lower the limit"
        )
    if more:
        return (
            f"more rows exist beyond the limit of {limit}; aggregate, filter with WHERE, ORDER BY what matters, "
            f"or raise the limit (at most {max_limit:,})"
        )
    return None


def cap_rows(rows: list[list[Any]], max_chars: int) -> tuple[list[list[Any]], bool]:
    """The leading rows whose JSON fits in ``max_chars``, and whether any were left out."""
    if len(json.dumps(rows, ensure_ascii=False)) <= max_chars:
        return rows, False
    size = 0
    for index, row in enumerate(rows):
        size += len(json.dumps(row, ensure_ascii=False)) + 1
        if size > max_chars:
            return rows[:index], True
    return rows, False


def describe_column(table: str, column: str) -> str:
    return COLUMN_DESCRIPTIONS.get(table, {}).get(column) or REDACTED_FLAG_COLUMNS.get(table, {}).get(
        column, ""
    )


def schema_result(
    dialect: str,
    columns: dict[str, list[tuple[str, str]]],
    table: str | None,
    table_functions: frozenset[str],
    extra_tables: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The ``sql_schema`` answer: the views (``columns``: view -> [(column, type)]) with their
    descriptions, or only ``table``, and the dialect statements are written in. ``extra_tables``:
    tables only the SQL tool has, as name -> (the table whose columns they share, description)."""
    extra = extra_tables or {}
    tables = {
        name: [
            {"name": c, "type": t, "description": describe_column(extra.get(name, (name, ""))[0], c)}
            for c, t in cols
        ]
        for name, cols in columns.items()
    }
    if table is not None:
        wanted = table.strip().lower().removeprefix(f"{REDACTED_SCHEMA}.")
        matches = {name: cols for name, cols in tables.items() if name.lower() == wanted}
        if not matches:
            raise NotFoundError(
                f"no table '{table}' is visible to the SQL tool; it can read: {', '.join(sorted(tables))}"
            )
        tables = matches
    return {
        "dialect": dialect,
        "schema": REDACTED_SCHEMA,
        "tables": [
            {
                "name": name,
                "description": TABLE_DESCRIPTIONS.get(name) or extra.get(name, ("", ""))[1],
                "columns": cols,
            }
            for name, cols in sorted(tables.items())
        ],
        "note": (
            f"Write {dialect} SQL. Each table is a view in schema {REDACTED_SCHEMA} without its secret columns "
            f"(flags such as has_password say whether one is set); write users or {REDACTED_SCHEMA}.users. "
            f"Also readable: CTEs, information_schema ({', '.join(sorted(METADATA_VIEWS))}), and the table "
            f"functions {', '.join(sorted(table_functions))}."
        ),
    }
