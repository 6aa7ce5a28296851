"""The redacted views (migration 3): one per table, never a secret column, every column described.

A migration that adds a table or a secret column fails here until it (re)creates the view."""

from __future__ import annotations

import duckdb

from mcp_state.db import apply_migrations, connect, get_schema_version
from mcp_state.schema import (
    COLUMN_DESCRIPTIONS,
    LATEST_VERSION,
    REDACTED_FLAG_COLUMNS,
    REDACTED_SCHEMA,
    SECRET_COLUMNS,
    TABLE_DESCRIPTIONS,
)

_NAMES = {
    "main": "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND database_name = current_database()",
    REDACTED_SCHEMA: (
        f"SELECT view_name FROM duckdb_views() WHERE schema_name = '{REDACTED_SCHEMA}' "
        "AND database_name = current_database()"
    ),
}


def _columns(conn: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[str]]:
    """The tables (``main``) or views (``redacted``) with their columns as a query sees them."""
    out: dict[str, list[str]] = {}
    for (name,) in conn.execute(_NAMES[schema]).fetchall():
        description = conn.execute(f'SELECT * FROM "{schema}"."{name}" LIMIT 0').description
        out[name] = [col[0] for col in description]
    return out


def test_every_table_has_a_view_with_every_column_but_the_secrets(tmp_path):
    conn = connect(tmp_path / "v.duckdb")
    tables = _columns(conn, "main")
    views = _columns(conn, REDACTED_SCHEMA)
    conn.close()
    assert sorted(views) == sorted(tables), "each table needs a view in schema redacted"
    for table, columns in tables.items():
        secret = SECRET_COLUMNS.get(table, frozenset())
        flags = list(REDACTED_FLAG_COLUMNS.get(table, {}))
        assert not secret & set(views[table]), f"redacted.{table} shows a secret column"
        assert views[table] == [c for c in columns if c not in secret] + flags, table


def test_secret_columns_and_flags_name_real_columns(tmp_path):
    conn = connect(tmp_path / "v.duckdb")
    tables = _columns(conn, "main")
    conn.close()
    for table, secret in SECRET_COLUMNS.items():
        assert secret <= set(tables[table]), table
    assert set(REDACTED_FLAG_COLUMNS) <= set(SECRET_COLUMNS)


def test_every_visible_table_and_column_is_described(tmp_path):
    conn = connect(tmp_path / "v.duckdb")
    views = _columns(conn, REDACTED_SCHEMA)
    conn.close()
    for view, columns in views.items():
        assert TABLE_DESCRIPTIONS.get(view), view
        described = {**COLUMN_DESCRIPTIONS.get(view, {}), **REDACTED_FLAG_COLUMNS.get(view, {})}
        assert [c for c in columns if not described.get(c)] == [], view


def test_migration_3_upgrades_a_version_2_database_with_data(tmp_path):
    path = tmp_path / "old.duckdb"
    conn = duckdb.connect(str(path))
    apply_migrations(conn, target=2)
    conn.execute("INSERT INTO users (id, email, password_hash) VALUES ('u1', 'a@example.com', 'CANARY-old')")
    conn.close()
    conn = connect(path)
    assert get_schema_version(conn) == LATEST_VERSION >= 3
    rows = conn.execute("SELECT * FROM redacted.users").fetchall()
    conn.close()
    assert len(rows) == 1 and "CANARY-old" not in repr(rows)


def test_a_new_column_of_a_table_shows_in_its_view(tmp_path):
    conn = connect(tmp_path / "v.duckdb")
    conn.execute("ALTER TABLE main.sync_state ADD COLUMN note VARCHAR")
    assert _columns(conn, REDACTED_SCHEMA)["sync_state"][-1] == "note"
    conn.close()
