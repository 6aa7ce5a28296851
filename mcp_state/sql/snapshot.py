"""The SQL tool's one use of the state database: read the redacted views to copy them.

The worker process never opens the database file; it gets copies of the redacted views'
rows from here. ``fingerprints()`` is cheap (one scan that hashes each view's rows), so a
worker is sent only the views that changed since its last copy. This is the only module of
``mcp_state.sql`` that touches ``Database``: a change in how the server holds the file
(``db.py``) is a change here.
"""

from __future__ import annotations

from typing import Any

from mcp_state.db import Database
from mcp_state.schema import REDACTED_SCHEMA

_VIEWS_SQL = (
    "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? "
    "ORDER BY view_name"
)


class Snapshot:
    """Copies of the redacted views of ``db``, for the SQL worker."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fingerprints(self) -> dict[str, str]:
        """Each redacted view's name and a fingerprint of its rows (count and hash sum)."""
        with self.db.session() as cursor:
            names = [str(row[0]) for row in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()]
            if not names:
                return {}
            sql = " UNION ALL ".join(
                f"SELECT {_literal(name)}, count(*)::VARCHAR || ':' || coalesce(sum(hash(t)), 0)::VARCHAR "
                f"FROM {_view(name)} AS t"
                for name in names
            )
            return {str(name): str(fp) for name, fp in cursor.execute(sql).fetchall()}

    def export(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """``{name: {"columns": [[column, type], ...], "rows": JSON array of row objects}}``."""
        tables: dict[str, dict[str, Any]] = {}
        with self.db.session() as cursor:
            for name in names:
                cursor.execute(f"SELECT * FROM {_view(name)} LIMIT 0")
                columns = [[str(col[0]), str(col[1])] for col in cursor.description or []]
                row = cursor.execute(
                    f"SELECT coalesce(json_group_array(to_json(t)), '[]')::VARCHAR FROM {_view(name)} AS t"
                ).fetchone()
                tables[name] = {"columns": columns, "rows": row[0] if row else "[]"}
        return tables


def _view(name: str) -> str:
    return f'"{REDACTED_SCHEMA}"."' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
