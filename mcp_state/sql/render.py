"""Markdown renderings of the SQL results, for MCP clients that show text and for the CLI."""

from __future__ import annotations

import json
from typing import Any

from mcp_state.sql.types import SqlExplainResult, SqlQueryResult, SqlSchemaResult

CELL_WIDTH = 60


def cell(value: Any, width: int | None = CELL_WIDTH) -> str:
    """One table cell: NULL for null, JSON for nested values, on one line, clipped to ``width``."""
    if value is None:
        text = "NULL"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    if "\n" in text or "\r" in text or "\t" in text:
        text = " ".join(text.split())
    if "|" in text:
        text = text.replace("|", "\\|")
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def table(headers: list[str], rows: list[list[Any]], width: int | None = CELL_WIDTH) -> str:
    """A markdown table with padded columns (readable as plain text too)."""
    cells = [[cell(h, width) for h in headers]] + [[cell(v, width) for v in row] for row in rows]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def query_markdown(result: SqlQueryResult, width: int | None = CELL_WIDTH) -> str:
    headers = [c["name"] for c in result["columns"]]
    parts = [table(headers, result["rows"], width)] if headers else []
    count = result["row_count"]
    summary = f"{count} row{'s' if count != 1 else ''}"
    if result["truncated"]:
        summary += " (truncated: more rows exist)"
    summary += f" in {result['elapsed_ms']:g} ms"
    parts.append(f"_{summary}_")
    if "message" in result:
        parts.append(result["message"])
    return "\n\n".join(parts)


def schema_markdown(result: SqlSchemaResult) -> str:
    parts = []
    for t in result["tables"]:
        head = f"### {t['name']}" + (f"\n{t['description']}" if t["description"] else "")
        rows: list[list[Any]] = [[c["name"], c["type"], c["description"]] for c in t["columns"]]
        parts.append(head + "\n\n" + table(["column", "type", "description"], rows, width=None))
    parts.append(result["note"])
    return "\n\n".join(parts)


def explain_markdown(result: SqlExplainResult) -> str:
    return f"```\n{result['plan']}\n```"
