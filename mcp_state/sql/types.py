"""Typed shapes of the SQL tools' results (they are also the tools' output schemas)."""

from __future__ import annotations

from typing import (
    Annotated,
    Any,
    NotRequired,  # pydantic needs it for schemas on Python < 3.12
)

from pydantic import WithJsonSchema
from typing_extensions import TypedDict

# The rows' JSON Schema stops at "an array": MCP clients validate results against the output
# schema, and a schema that descends into every cell made a 100-row result cost the Python
# SDK client 6 ms of jsonschema work per call (the server still validates the full type).
Rows = Annotated[
    list[list[Any]],
    WithJsonSchema(
        {"type": "array", "description": "One array per row, its JSON values in the order of `columns`."}
    ),
]


class SqlColumn(TypedDict):
    name: str
    type: str


class SqlQueryResult(TypedDict):
    """Rows of one read-only statement, each a list of JSON-safe values in ``columns`` order."""

    columns: list[SqlColumn]
    rows: Rows
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
    """The tables (redacted views) the SQL tools can read, and the SQL dialect to write."""

    dialect: str
    schema: str
    tables: list[SqlSchemaTable]
    note: str


class SqlExplainResult(TypedDict):
    plan: str
    elapsed_ms: float
