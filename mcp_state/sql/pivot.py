"""``PIVOT t ON col USING agg`` without an ``IN`` list, made read-only.

DuckDB runs such a PIVOT as several statements (it creates an enum type of the values
first), which the read-only SQL tool cannot do. Instead, the distinct values of each ``ON``
column are read first (through the same gate as any statement) and written into an ``IN``
list: ``PIVOT t ON col IN ('a', 'b') USING agg``, which is one read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mcp_state.errors import InvalidSQLError

MAX_PIVOT_VALUES = 100

_PIVOT = re.compile(
    r"^\s*PIVOT\s+(?P<source>.+?)\s+ON\s+(?P<on>.+?)"
    r"(?:\s+USING\s+(?P<using>.+?))?(?:\s+GROUP\s+BY\s+(?P<group>.+?))?"
    r"(?:\s+(?P<tail>ORDER\s+BY\s+.+?|LIMIT\s+.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_COLUMN = re.compile(r'^(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"]|"")+")$')


def rewrite_pivot(sql: str, rows_of: Callable[[str], list[tuple[Any, ...]]]) -> str:
    """``sql`` (a PIVOT without ``IN``) with an ``IN`` list per ``ON`` column; ``rows_of`` runs a
    checked read. Refuses what it cannot rewrite, with the statement to write instead."""
    match = _PIVOT.match(sql)
    columns = [c.strip() for c in match.group("on").split(",")] if match else []
    if not match or not columns or not all(_COLUMN.match(c) for c in columns):
        raise InvalidSQLError(
            "a PIVOT without an IN list creates a temporary type, which the read-only SQL tool cannot do; "
            "list the values: PIVOT t ON col IN ('a', 'b') USING count(*)"
        )
    source = match.group("source").strip()
    ons = []
    for column in columns:
        values = rows_of(
            f"SELECT DISTINCT {column} FROM {source} WHERE {column} IS NOT NULL ORDER BY 1 "
            f"LIMIT {MAX_PIVOT_VALUES + 1}"
        )
        if len(values) > MAX_PIVOT_VALUES:
            raise InvalidSQLError(
                f"PIVOT ON {column} has more than {MAX_PIVOT_VALUES} distinct values; list the ones you need: "
                f"PIVOT {source} ON {column} IN ('a', 'b') USING count(*)"
            )
        if not values:
            raise InvalidSQLError(f"PIVOT ON {column}: the column has no values to pivot on")
        ons.append(f"{column} IN ({', '.join(_literal(row[0]) for row in values)})")
    text = f"PIVOT {source} ON {', '.join(ons)}"
    for clause, key in (("USING", "using"), ("GROUP BY", "group")):
        if match.group(key):
            text += f" {clause} {match.group(key).strip()}"
    if match.group("tail"):
        text += f" {match.group('tail').strip()}"
    return text


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
