"""Fewer calls to DuckDB per write, same guarantees.

A transaction sends BEGIN with its first statement; a lone single-statement write outside a
transaction commits on its own (DuckDB runs it as one transaction); an upsert returns the row
as stored without reading it again. Each must keep what the longer form promised. (That an
acknowledged write survives kill -9 is tested in test_state_processes.py and test_faults_kill.py.)
"""

from __future__ import annotations

import duckdb
import psycopg
import pytest

from mcp_state.db import Database, connect
from mcp_state.errors import ConflictError
from mcp_state.gateway import Gateway
from mcp_state.repositories import ScriptRepository, SyncStateRepository, TableRegistryRepository


@pytest.fixture(params=["connection", "database", "postgres"])
def gateway(request, tmp_path):
    path = tmp_path / "state.duckdb"
    if request.param == "postgres":
        path = request.getfixturevalue("pg_state_url")
    source = connect(path) if request.param == "connection" else Database(path, idle_release=None)
    gateway = Gateway(source)
    gateway.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v VARCHAR)")
    yield gateway
    source.close()


class Boom(Exception):
    pass


def keys(gateway: Gateway) -> list[int]:
    return [row["k"] for row in gateway.fetch_all("SELECT k FROM t ORDER BY k")]


def test_a_block_is_one_transaction_from_its_first_statement(gateway):
    with pytest.raises(Boom), gateway.transaction():
        gateway.execute("INSERT INTO t VALUES (1, 'a')")
        gateway.execute("INSERT INTO t VALUES (2, 'b')")
        raise Boom
    assert keys(gateway) == []
    with gateway.transaction():
        gateway.execute("INSERT INTO t VALUES (1, 'a')")
        gateway.execute("INSERT INTO t VALUES (2, 'b')")
    assert keys(gateway) == [1, 2]


def test_a_first_statement_that_does_not_parse_aborts_the_block_as_with_an_explicit_begin(gateway):
    aborted, unparsed = (
        (duckdb.TransactionException, duckdb.ParserException)
        if gateway.dialect.name == "duckdb"
        else (psycopg.errors.InFailedSqlTransaction, psycopg.errors.SyntaxError)
    )
    with pytest.raises(aborted), gateway.transaction():
        with pytest.raises(unparsed):
            gateway.execute("INSRT INTO t VALUES (1, 'a')")
        gateway.execute("INSERT INTO t VALUES (1, 'a')")  # "current transaction is aborted"
    assert keys(gateway) == []
    gateway.execute("INSERT INTO t VALUES (2, 'b')")  # and the next block starts clean
    assert keys(gateway) == [2]


def test_a_first_statement_that_fails_rolls_the_block_back(gateway):
    gateway.execute("INSERT INTO t VALUES (1, 'a')")
    with pytest.raises(ConflictError), gateway.transaction():
        gateway.execute("INSERT INTO t VALUES (1, 'again')")
    with gateway.transaction():
        gateway.execute("INSERT INTO t VALUES (2, 'b')")
    assert keys(gateway) == [1, 2]


def test_an_empty_block_and_a_read_only_block_commit_nothing_and_fail_nothing(gateway):
    with gateway.transaction():
        pass
    with gateway.transaction():
        assert gateway.fetch_all("SELECT * FROM t") == []
    gateway.execute("INSERT INTO t VALUES (1, 'a')")
    assert keys(gateway) == [1]


def test_a_lone_statement_is_atomic(gateway):
    gateway.execute("INSERT INTO t VALUES (5, 'x')")
    with pytest.raises(ConflictError):  # rows 0..9 with 5 taken: the statement fails whole
        gateway.execute("INSERT INTO t SELECT g, 'n' FROM generate_series(0, 9) AS s(g)")
    assert keys(gateway) == [5]
    assert gateway.execute("UPDATE t SET v = 'y' WHERE k = 5") == 1


def test_several_statements_in_one_call_are_one_transaction(gateway):
    with pytest.raises(ConflictError):
        gateway.execute("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (1, 'dup')")
    assert keys(gateway) == []


def test_an_upsert_returns_the_row_as_stored(tmp_path):
    db = Database(tmp_path / "state.duckdb", idle_release=None)
    try:
        registry = TableRegistryRepository(db)
        first = registry.register("t1", "One", registered_by="ana")
        again = registry.register("t1", "One again", registered_by="bo")  # registered_by is insert-only
        assert again == registry.get("t1")
        assert again["name"] == "One again" and again["registered_by"] == "ana"
        assert again["registered_at"] == first["registered_at"]
        scripts = ScriptRepository(db)
        scripts.deploy("s1", "Script", owner="ana", schedule="0 8 * * *", source="print(1)")
        kept = scripts.deploy("s1", "Script", owner=None, schedule="0 9 * * *", source="print(2)")
        assert kept == scripts.get("s1") and kept["owner"] == "ana"  # owner keeps its value on NULL
        state = SyncStateRepository(db).update_sync("orders", rows=3, file_size_bytes=1, hash="h")
        assert state == SyncStateRepository(db).get_table_state("orders")
    finally:
        db.close()
