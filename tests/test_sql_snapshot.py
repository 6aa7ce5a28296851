"""The SQL worker's copies follow the database exactly and cheaply: a table nobody wrote is never
read again, a written one is re-read (the audit log by its new rows only), and a write the gateway
cannot name (DDL, a raw session, another process while the file was closed) re-checks them all."""

from __future__ import annotations

from typing import Any

import pytest
from sql_support import seeded_db_path

from mcp_state.errors import InvalidSQLError
from mcp_state.gateway import Gateway
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.snapshot import Snapshot
from mcp_state.write_marks import tables_written


@pytest.fixture
def db(tmp_path):
    database = hardened_database(seeded_db_path(tmp_path / "data"), idle_release=None)
    yield database
    database.close()


def sync(snapshot: Snapshot, held: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, bool, int]]]:
    """What the snapshot sends a worker holding ``held``: (table, replace, rows) per load."""
    loads = []
    for request in snapshot.changes(held):
        if request["op"] == "state":
            return request["state"], loads
        if request["op"] == "load":
            loads.append((request["table"], request["replace"], request["rows"].count('{"')))
    raise AssertionError("no state at the end")


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("SELECT * FROM users WHERE updated_at > now()", set()),
        ("UPDATE main.users SET name = ? WHERE id = ?", {"users"}),
        ('DELETE FROM "Audit_Log" WHERE seq < 3', {"audit_log"}),
        ("INSERT OR REPLACE INTO sync_state SELECT 1", {"sync_state"}),
        ("BEGIN TRANSACTION;\nINSERT INTO a VALUES (1); UPDATE b SET x = 1", {"a", "b"}),
        ("INSERT INTO users VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'x'", {"users", "set"}),
        ("CREATE TABLE x (a INTEGER)", None),
        ("COPY users FROM 'x.csv'", None),
        ("WITH t AS (SELECT 1) INSERT INTO users SELECT * FROM t", {"users"}),
    ],
)
def test_the_tables_a_statement_writes_are_read_from_its_text_erring_towards_more(sql, tables):
    assert tables_written(sql) == (None if tables is None else frozenset(tables))


def test_an_unwritten_table_is_never_read_again_and_a_written_one_is(db):
    snapshot, gateway = Snapshot(db), Gateway(db)
    held, loads = sync(snapshot, {})
    assert {table for table, _, _ in loads} >= {"users", "audit_log"}
    gateway.fetch_all("SELECT * FROM users")  # reads through the gateway change nothing
    operations = db._generation  # every operation on the database moves it
    held, loads = sync(snapshot, held)
    assert loads == [] and db._generation == operations  # nothing was read
    db.release()  # closed: another process may have written meanwhile, so each view is checked
    held, loads = sync(snapshot, held)
    assert loads == [] and db._generation > operations
    gateway.execute("UPDATE users SET name = 'Renamed' WHERE id = 'u1'")
    gateway.execute("INSERT INTO users (id, email, name, role) VALUES ('u9', 'n@example.com', 'N', 'viewer')")
    held, loads = sync(snapshot, held)
    assert loads == [("users", True, 5)]  # only the written table, whole
    with gateway.transaction():
        gateway.execute(
            "INSERT INTO audit_log (id, timestamp, action, result) VALUES ('a-new', now(), 'vote', 'ok')"
        )
    held, loads = sync(snapshot, held)
    assert loads == [("audit_log", False, 1)]  # appended to: the new row only
    held, loads = sync(snapshot, held)
    assert loads == []


def test_writes_the_gateway_cannot_name_recheck_every_table(db):
    snapshot = Snapshot(db)
    held, _ = sync(snapshot, {})
    with db.session() as cursor:  # a raw session may write anything
        cursor.execute("UPDATE users SET name = 'Raw' WHERE id = 'u2'")
    held, loads = sync(snapshot, held)
    assert loads == [("users", True, 4)]  # every view fingerprinted, only the changed one copied
    Gateway(db).execute("CREATE TABLE main.scratch (a INTEGER); INSERT INTO main.scratch VALUES (1)")
    held, loads = sync(snapshot, held)
    assert loads == []
    db.release()  # another process may write while the file is closed
    with hardened_database(db.path, idle_release=None) as other, other.session() as cursor:
        cursor.execute("DELETE FROM knowledge_votes")
    held, loads = sync(snapshot, held)
    assert loads == [("knowledge_votes", True, 0)]


def test_the_engine_answers_from_fresh_copies_after_each_kind_of_write(db):
    engine, gateway = SqlEngine(db), Gateway(db)
    try:
        assert engine.query("SELECT name FROM users WHERE id = 'u1'")["rows"] == [["Ana"]]
        gateway.execute("UPDATE users SET name = 'Anne' WHERE id = 'u1'")
        assert engine.query("SELECT name FROM users WHERE id = 'u1'")["rows"] == [["Anne"]]
        with db.session() as cursor:
            cursor.execute("UPDATE users SET name = 'Bea' WHERE id = 'u1'")
        assert engine.query("SELECT name FROM users WHERE id = 'u1'")["rows"] == [["Bea"]]
    finally:
        engine.close()


def test_the_precheck_keeps_accepted_statements_only(db):
    snapshot = Snapshot(db)
    for _ in range(2):
        snapshot.precheck("SELECT count(*) FROM users")
        with pytest.raises(InvalidSQLError, match="not available"):
            snapshot.precheck("SELECT * FROM main.users")
    assert list(snapshot._accepted) == ["SELECT count(*) FROM users"]
