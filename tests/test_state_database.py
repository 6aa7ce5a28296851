"""The ``Database`` handle and the seed's module contract (``DATA_DIR``, file locations).

DuckDB only: files, their locks and their release (PostgreSQL's ``Database``: test_state_postgres.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from mcp_state.db import (
    Database,
    connect,
    get_analytics_db,
    get_system_db,
    lock_timeout,
    system_db_path,
)
from mcp_state.errors import DatabaseUnavailableError, InvalidArgumentError
from mcp_state.repositories import AuditRepository


# -- the seed's contract ------------------------------------------------------------------------
def test_data_dir_is_read_at_call_time(tmp_path, monkeypatch):
    for name in ("one", "two"):
        monkeypatch.setenv("DATA_DIR", str(tmp_path / name))
        conn = get_system_db()
        AuditRepository(conn).log(action=name)
        conn.close()
        assert (tmp_path / name / "state" / "system.duckdb").is_file()
    for name in ("one", "two"):
        conn = connect(tmp_path / name / "state" / "system.duckdb")
        assert [e["action"] for e in AuditRepository(conn).query()] == [name]
        conn.close()


def test_data_dir_defaults_to_dot_data(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert system_db_path() == Path("data") / "state" / "system.duckdb"
    get_system_db().close()
    assert (tmp_path / "data" / "state" / "system.duckdb").is_file()


def test_the_analytics_database_lives_next_to_the_state(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    conn = get_analytics_db()
    assert conn.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
    conn.close()
    assert (tmp_path / "d" / "analytics" / "server.duckdb").is_file()


@pytest.mark.parametrize("value", ["abc", "-1", "", "nan"])
def test_a_bad_lock_timeout_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("MCP_STATE_LOCK_TIMEOUT", value)
    with pytest.raises(InvalidArgumentError, match="MCP_STATE_LOCK_TIMEOUT"):
        lock_timeout()


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("0.25", 0.25), (" 3 ", 3.0)])
def test_a_good_lock_timeout_is_read(monkeypatch, value, seconds):
    monkeypatch.setenv("MCP_STATE_LOCK_TIMEOUT", value)
    assert lock_timeout() == seconds


# -- Database --------------------------------------------------------------------------------------
def test_opens_lazily_and_reopens_after_release(tmp_path):
    opens: list[duckdb.DuckDBPyConnection] = []
    db = Database(tmp_path / "s.duckdb", idle_release=None, on_open=opens.append)
    assert not db.is_open and not (tmp_path / "s.duckdb").exists()
    AuditRepository(db).log(action="first")
    assert db.is_open and len(opens) == 1
    assert db.release() is True and not db.is_open
    assert [e["action"] for e in AuditRepository(db).query()] == ["first"]  # reopened on demand
    assert len(opens) == 2
    db.close()


def test_releases_the_file_after_the_idle_period_and_not_before(tmp_path):
    db = Database(tmp_path / "s.duckdb", idle_release=1.0)
    AuditRepository(db).log(action="x")
    time.sleep(0.2)
    assert db.is_open
    deadline = time.monotonic() + 5
    while db.is_open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not db.is_open
    other = connect(tmp_path / "s.duckdb", wait=0)  # nothing holds it now
    other.close()
    assert AuditRepository(db).count() == 1
    db.close()


def test_does_not_release_while_an_operation_is_in_flight(tmp_path):
    db = Database(tmp_path / "s.duckdb", idle_release=0.05)
    with db.session() as cursor:
        time.sleep(0.3)  # far past the idle period, but busy
        assert db.is_open
        assert db.release() is False
        assert cursor.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0
    db.close()


def test_each_operation_gets_its_own_cursor(tmp_path):
    db = Database(tmp_path / "s.duckdb", idle_release=None)
    with db.session() as first, db.session() as second:
        assert first is not second
        assert first is not db.open() and second is not db.open()
    db.close()


def test_a_memory_database_is_never_released():
    db = Database(":memory:", idle_release=0.01)
    AuditRepository(db).log(action="kept")
    time.sleep(0.2)
    assert db.is_open
    assert db.release() is False  # closing it would throw the data away
    assert AuditRepository(db).count() == 1
    db.close()


def test_close_waits_for_operations_and_then_refuses_new_ones(tmp_path):
    db = Database(tmp_path / "s.duckdb", idle_release=None)
    AuditRepository(db).log(action="a")
    started = threading.Event()
    finished: list[int] = []

    def slow() -> None:
        with db.session() as cursor:
            started.set()
            time.sleep(0.3)
            finished.append(cursor.execute("SELECT count(*) FROM audit_log").fetchone()[0])

    worker = threading.Thread(target=slow)
    worker.start()
    started.wait(5)
    db.close()
    worker.join(5)
    assert finished == [1]
    with pytest.raises(DatabaseUnavailableError):
        AuditRepository(db).count()
    connect(tmp_path / "s.duckdb", wait=0).close()  # the file is free
