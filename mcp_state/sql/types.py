"""Typed shapes of the SQL tools' results (they are also the tools' output schemas)."""

from __future__ import annotations

from typing import Any

from typing_extensions import NotRequired, TypedDict  # pydantic needs it for schemas on Python < 3.12


class SqlColumn(TypedDict):
    name: str
    type: str


class SqlQueryResult(TypedDict):
    """Rows of one read-only statement, each a list of JSON-safe values in ``columns`` order."""

    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    limit: int
    elapsed_ms: float
    message: NotRequired[str]


class SqlSchemaColumn(TypedDict):
    name: str
    type: str
    description: str


class SqlSchemaTable(TypedDict):
    name: str
    description: str
    columns: list[SqlSchemaColumn]


class SqlSchemaResult(TypedDict):
    """The tables (redacted views) the SQL tools can read."""

    schema: str
    tables: list[SqlSchemaTable]
    note: str


class SqlExplainResult(TypedDict):
    plan: str
    elapsed_ms: float
