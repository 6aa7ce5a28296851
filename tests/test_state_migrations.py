"""Numbered schema migrations: each applied once, in its own transaction, and recorded.

A failing migration is rolled back whole and leaves the previous version intact; a
database newer than this code is refused with a clear ``SchemaError``. On DuckDB here;
PostgreSQL's (the same runner, plus concurrent openers): test_state_postgres.py.
"""

from __future__ import annotations

import duckdb
import pytest

from mcp_state import db as db_module
from mcp_state import schema as schema_module
from mcp_state.db import Database, apply_migrations, connect, get_schema_version, get_system_db
from mcp_state.errors import SchemaError
from mcp_state.repositories import UserRepository
from mcp_state.schema import LATEST_VERSION, MIGRATIONS, Migration


def versions(conn: duckdb.DuckDBPyConnection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]


def tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_migrations_are_numbered_one_to_latest_without_gaps():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == LATEST_VERSION
    assert all(m.name and m.sql.strip() for m in MIGRATIONS)


def test_a_fresh_database_records_each_migration_once(tmp_path):
    path = tmp_path / "s.duckdb"
    conn = connect(path)
    assert versions(conn) == list(range(1, LATEST_VERSION + 1))
    assert conn.execute("SELECT count(*) FROM schema_version WHERE applied_at IS NULL").fetchone()[0] == 0
    assert apply_migrations(conn) == LATEST_VERSION  # nothing left to do
    conn.close()
    for _ in range(3):  # reopening applies nothing again
        conn = connect(path)
        assert versions(conn) == list(range(1, LATEST_VERSION + 1))
        conn.close()


def test_seed_tables_all_exist():
    conn = connect(":memory:")
    expected = {
        "schema_version",
        "users",
        "sync_state",
        "sync_history",
        "user_sync_settings",
        "knowledge_items",
        "knowledge_votes",
        "audit_log",
        "telegram_links",
        "pending_codes",
        "script_registry",
        "table_registry",
        "table_profiles",
        "dataset_permissions",
    }
    assert expected <= tables(conn)
    conn.close()


def test_an_older_database_gets_only_the_missing_migrations(tmp_path):
    path = tmp_path / "s.duckdb"
    conn = connect(path, migrate=False)
    assert get_schema_version(conn) == 0
    assert apply_migrations(conn, target=1) == 1
    conn.execute("INSERT INTO users (id, email) VALUES ('u1', 'a@b.c')")
    applied_v1 = conn.execute("SELECT applied_at FROM schema_version WHERE version = 1").fetchone()[0]
    conn.close()

    conn = connect(path)
    assert versions(conn) == list(range(1, LATEST_VERSION + 1))
    assert conn.execute("SELECT applied_at FROM schema_version WHERE version = 1").fetchone()[0] == applied_v1
    assert UserRepository(conn).get_by_id("u1")["email"] == "a@b.c"
    conn.close()


GOOD = Migration(
    LATEST_VERSION + 1,
    "a good one",
    "CREATE TABLE extra_good (x INTEGER); INSERT INTO extra_good VALUES (1);",
)
BROKEN = Migration(
    LATEST_VERSION + 2,
    "a broken one",
    # DDL and a data change first, then a failure: all of it must be rolled back.
    "CREATE TABLE extra_broken (x INTEGER); UPDATE users SET name = 'changed'; "
    "ALTER TABLE users ADD COLUMN nickname VARCHAR; INSERT INTO no_such_table VALUES (1);",
)


def test_a_failing_migration_leaves_the_previous_version_intact(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    conn = connect(path)
    UserRepository(conn).create("u1", "a@b.c", "original")
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, GOOD, BROKEN))

    with pytest.raises(SchemaError) as info:
        apply_migrations(conn, target=BROKEN.version)
    message = str(info.value)
    assert f"migration {BROKEN.version}" in message and "a broken one" in message
    assert f"stays at version {GOOD.version}" in message  # each migration is its own transaction

    assert get_schema_version(conn) == GOOD.version
    assert versions(conn) == list(range(1, GOOD.version + 1))
    assert "extra_good" in tables(conn)
    assert "extra_broken" not in tables(conn)
    user = UserRepository(conn).get_by_id("u1")
    assert user["name"] == "original" and "nickname" not in user
    conn.close()

    # The file holds exactly that, and works, when opened again.
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, GOOD))
    monkeypatch.setattr(schema_module, "LATEST_VERSION", GOOD.version)
    monkeypatch.setattr(db_module, "LATEST_VERSION", GOOD.version)
    conn = connect(path, migrate=False)
    assert get_schema_version(conn) == GOOD.version
    assert "extra_broken" not in tables(conn)
    UserRepository(conn).update("u1", name="still writable")
    conn.close()


def test_a_migration_that_fails_first_leaves_the_version_where_it_was(monkeypatch):
    conn = connect(":memory:")
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, BROKEN))
    with pytest.raises(SchemaError, match=f"stays at version {LATEST_VERSION}"):
        apply_migrations(conn, target=BROKEN.version)
    assert get_schema_version(conn) == LATEST_VERSION
    assert "extra_broken" not in tables(conn)
    conn.close()


def _stamp_newer(path) -> None:
    conn = connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", [LATEST_VERSION + 5])
    conn.close()


@pytest.mark.parametrize("opener", ["connect", "get_system_db", "Database", "no-migrate"])
def test_a_newer_database_is_refused_clearly(tmp_path, monkeypatch, opener):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "data" / "state" / "system.duckdb"
    _stamp_newer(path)
    open_it = {
        "connect": lambda: connect(path),
        "get_system_db": get_system_db,
        "Database": lambda: Database(path).open(),
        "no-migrate": lambda: connect(path, migrate=False),
    }[opener]
    with pytest.raises(SchemaError) as info:
        open_it()
    message = str(info.value)
    assert f"schema version {LATEST_VERSION + 5}" in message
    assert f"({LATEST_VERSION})" in message and "Upgrade mcp-state" in message
    # Nothing was changed, and the refused connection was closed: the file opens read-only
    # (which DuckDB refuses while a read-write handle on it is still open in this process).
    ro = duckdb.connect(str(path), read_only=True)
    assert ro.execute("SELECT max(version) FROM schema_version").fetchone()[0] == LATEST_VERSION + 5
    ro.close()
    assert path.exists()


def test_schema_version_is_zero_without_a_schema():
    conn = duckdb.connect()
    assert get_schema_version(conn) == 0
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    assert get_schema_version(conn) == 0
    conn.close()
