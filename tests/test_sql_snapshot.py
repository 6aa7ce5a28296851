"""The SQL worker's copies follow the database exactly and cheaply: a table nobody wrote is never
read again, a written one is re-read (the audit log by its new rows only), and a write the gateway
cannot name (DDL, a raw session, another process while the file was closed) re-checks them all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sql_support import replay, seeded_db_path

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


def sync(
    snapshot: Snapshot, held: dict[str, Any], wanted: frozenset[str] | None = None
) -> tuple[dict[str, Any], list[tuple[str, bool, int]]]:
    """What the snapshot sends a worker holding ``held``: (table, replace, rows) per load."""
    loads = []
    for request in snapshot.changes(held, wanted):
        if request["op"] == "state":
            return request["state"], loads
        if request["op"] == "load":
            loads.append((request["table"], request["replace"], len(json.loads(request["parts"][0]))))
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


def test_only_the_views_a_statement_reads_are_copied(db):
    snapshot = Snapshot(db)
    reads = snapshot.precheck(
        "WITH audit_log AS (SELECT 1 AS n) SELECT * FROM audit_log, users u JOIN redacted.sync_state s ON true"
    )
    assert reads == {"users", "sync_state"}  # the CTE named audit_log is no table
    assert snapshot.precheck("SELECT 1") == frozenset()
    assert snapshot.precheck("DESCRIBE knowledge_items") == {"knowledge_items"}
    held, loads = sync(snapshot, {}, reads)
    assert [load for load in loads if load[2]] == [("sync_state", True, 3), ("users", True, 4)]
    assert {table for table, _, _ in loads} >= {"audit_log", "knowledge_items"}  # declared, empty
    held, loads = sync(snapshot, held, frozenset({"audit_all"}))  # a view over live and archive rows
    assert loads == [("audit_archive", True, 0), ("audit_log", True, 10)]
    held, loads = sync(snapshot, held, None)  # a statement the precheck cannot read: all
    assert {table for table, _, rows in loads if rows} >= {"knowledge_items", "sync_history", "api_tokens"}


def test_a_chunked_copy_lets_go_of_the_file_between_chunks_and_stays_consistent(db, monkeypatch):
    monkeypatch.setattr("mcp_state.sql.snapshot.CHUNK_ROWS", 3)
    gateway = Gateway(db)
    snapshot = Snapshot(db)
    copy = snapshot.changes({}, frozenset({"audit_log"}))
    requests = [next(copy)]
    while requests[-1]["op"] != "load" or requests[-1]["parts"][0] == b"[]":  # the declarations
        requests.append(next(copy))
    assert requests[-1]["table"] == "audit_log" and len(json.loads(requests[-1]["parts"][0])) == 3
    assert db.release()  # nothing in flight between two chunks: another process could have the file
    with gateway.transaction():  # appended meanwhile: not part of this copy, which reads on
        gateway.execute(
            "INSERT INTO audit_log (id, timestamp, action, result) VALUES ('a-new', now(), 'x', 'ok')"
        )
    requests += list(copy)
    assert requests[-1]["state"]["audit_log"]["seq"] == 10  # the copy ends where the table did when it began
    rows = replay(requests[:-1])["audit_log"]
    assert [row[0] for row in sorted(rows, key=lambda r: r[-1])] == [f"a{i:02d}" for i in range(1, 11)]
    assert sum(1 for r in requests if r.get("table") == "audit_log" and r["op"] == "load") == 1 + 4
    # Rows the copy had read were deleted (as audit archive does) between two chunks: it starts again.
    copy = snapshot.changes({}, frozenset({"audit_log"}))
    requests = [next(copy)]
    while requests[-1]["op"] != "load" or requests[-1]["parts"][0] == b"[]":
        requests.append(next(copy))
    gateway.execute("DELETE FROM audit_log WHERE id IN ('a01', 'a02')")
    requests += list(copy)
    loads = [
        (r["replace"], len(json.loads(r["parts"][0])))
        for r in requests
        if r["op"] == "load" and r["table"] == "audit_log"
    ]
    assert loads[1:] == [(True, 3), (True, 3), (False, 3), (False, 3)]  # the first try, then all again
    expected = db.cursor().execute("SELECT * FROM redacted.audit_log ORDER BY ALL").fetchall()
    assert replay(requests[:-1])["audit_log"] == expected
