"""Layer 5 (the hardened instance) and the DuckDB 2.0.1 facts the SQL tool's design rests on.

The facts are measured here on real DuckDB, so an upgrade that changes one fails a test
instead of silently opening a hole."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import duckdb
import pytest
from sql_support import seeded_db_path

from mcp_state.gateway import Gateway
from mcp_state.sql import SqlEngine, harden, hardened_config, hardened_database
from mcp_state.sql.hardening import REQUIRED_SETTINGS, hardening_problems


@pytest.fixture
def hardened(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    db = hardened_database(path, idle_release=None)
    yield db, tmp_path
    db.close()


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "canary.csv").write_text("a\n1\n")
    return outside


# -- the hardened instance ---------------------------------------------------------------


def test_the_database_file_opens_writes_and_spills_under_the_data_directory(tmp_path):
    data = tmp_path / "data"
    path = seeded_db_path(data)
    db = hardened_database(path, idle_release=None, memory_limit="64MB")
    try:
        Gateway(db).execute("INSERT INTO audit_log (id, action) VALUES ('new', 'written')")
        assert Gateway(db).fetch_value("SELECT count(*) FROM audit_log") == 11
        with db.session() as cursor:
            # A sort of ~100 MB under a 64 MB limit spills to the directory next to the file.
            cursor.execute("SELECT m FROM (SELECT md5(range::VARCHAR) AS m FROM range(1000000)) ORDER BY m")
            assert cursor.fetchone() == ("0000104cd168386a335ba6bf6e32219d",)
            spilled = [p for p in (path.parent / "system.duckdb.tmp").iterdir() if p.suffix == ".tmp"]
            assert spilled, "nothing was spilled"
    finally:
        db.close()
    assert {p.name for p in tmp_path.iterdir()} == {"data"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('{outside}/canary.csv')",
        "SELECT * FROM read_text('{outside}/canary.csv')",
        "SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM '{outside}/canary.csv'",
        "COPY (SELECT 1) TO '{outside}/out.csv'",
        "EXPORT DATABASE '{outside}/export'",
        "ATTACH '{outside}/other.duckdb' AS other",
        "INSTALL httpfs",
    ],
)
def test_no_file_outside_the_database_is_reachable_even_past_the_guard(hardened, sql):
    db, tmp_path = hardened
    outside = _outside(tmp_path)
    with db.session() as cursor, pytest.raises(duckdb.Error, match="disabled by configuration"):
        cursor.execute(sql.replace("{outside}", str(outside))).fetchall()
    assert {p.name for p in outside.iterdir()} == {"canary.csv"}


@pytest.mark.parametrize(
    "sql",
    [
        "SET threads = 1",
        "SET GLOBAL threads = 1",
        "SET SESSION enable_profiling = 'json'",
        "RESET memory_limit",
        "PRAGMA threads = 1",
        "SET enable_external_access = true",
        "SET GLOBAL autoload_known_extensions = true",
        "SET lock_configuration = false",
        "SET GLOBAL python_enable_replacements = true",
    ],
)
def test_the_configuration_is_locked(hardened, sql):
    db, _ = hardened
    with db.session() as cursor, pytest.raises(duckdb.Error, match="configuration has been locked"):
        cursor.execute(sql)


def test_only_the_engine_s_time_limit_and_search_path_stay_settable(hardened):
    db, _ = hardened
    with db.session() as cursor:
        cursor.execute("SET SESSION max_execution_time = 1234")
        cursor.execute("SET SESSION search_path = 'redacted'")
        values = cursor.execute(
            "SELECT current_setting('max_execution_time'), current_setting('search_path')"
        ).fetchone()
        assert values == (1234, "redacted")
        settings = cursor.execute(
            "SELECT " + ", ".join(f"current_setting('{name}')" for name in REQUIRED_SETTINGS)
        ).fetchone()
    assert hardening_problems(dict(zip(REQUIRED_SETTINGS, settings, strict=True))) == []


def test_python_variables_are_never_read_as_tables(tmp_path):
    plain = duckdb.connect()
    frame_table = plain.sql("SELECT 42 AS leaked")  # noqa: F841 - found by name in this frame
    assert plain.execute("SELECT * FROM frame_table").fetchall() == [(42,)]  # the default does it
    conn = duckdb.connect(config=hardened_config(":memory:"))
    harden(conn)
    with pytest.raises(duckdb.CatalogException):
        conn.execute("SELECT * FROM frame_table").fetchall()
    conn.close()
    plain.close()


def test_hardening_is_reapplied_when_the_file_is_reopened_after_idle(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    db = hardened_database(path, idle_release=0.05)
    try:
        engine = SqlEngine(db)
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]
        deadline = time.monotonic() + 5
        while db.is_open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not db.is_open, "the file was not released when idle"
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]  # reopened, checked again
        with db.session() as cursor, pytest.raises(duckdb.Error, match="locked"):
            cursor.execute("SET GLOBAL enable_external_access = true")
    finally:
        db.close()


def test_hardening_problems_names_each_missing_setting():
    assert hardening_problems({**REQUIRED_SETTINGS, "lock_configuration": False}) == [
        "lock_configuration is False (needs true)"
    ]
    assert len(hardening_problems({})) == len(REQUIRED_SETTINGS)


def test_an_in_memory_database_gets_no_spill_directory_in_the_current_directory():
    assert hardened_config(":memory:")["temp_directory"] == ""
    assert "temp_directory" not in hardened_config("/data/state/system.duckdb")


# -- why one layer is never enough: DuckDB 2.0.1 behaviour, measured -------------------------


def _plain_file_db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(tmp_path / "plain.duckdb"))
    conn.execute("CREATE TABLE t AS SELECT range AS a FROM range(5); CREATE SEQUENCE s")
    return conn


def test_fact_a_data_modifying_cte_is_typed_select_and_deletes(tmp_path):
    conn = _plain_file_db(tmp_path)
    sql = "WITH d AS (DELETE FROM t WHERE a = 0 RETURNING *) SELECT * FROM d"
    assert [s.type.name for s in conn.extract_statements(sql)] == ["SELECT"]
    conn.execute(sql).fetchall()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,)
    conn.close()


def test_fact_a_read_only_transaction_lets_nested_sql_delete_and_copy_write(tmp_path):
    conn = _plain_file_db(tmp_path)
    conn.execute("BEGIN TRANSACTION READ ONLY")
    conn.execute(
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
        "'WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d'))"
    ).fetchall()
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,), "the deletion survived the rollback"
    conn.execute("BEGIN TRANSACTION READ ONLY")
    conn.execute(f"COPY t TO '{tmp_path / 'copied.csv'}'")
    conn.execute("SET threads = 1")
    conn.execute("ROLLBACK")
    assert (tmp_path / "copied.csv").exists()
    conn.close()


def test_fact_nextval_survives_a_rollback_and_explain_analyze_runs_the_write(tmp_path):
    conn = _plain_file_db(tmp_path)
    conn.execute("BEGIN TRANSACTION")
    conn.execute("SELECT nextval('s')").fetchall()
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT nextval('s')").fetchone() == (2,)
    conn.execute("EXPLAIN ANALYZE DELETE FROM t WHERE a = 4").fetchall()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,)
    conn.close()


def test_fact_a_second_read_only_connection_to_an_open_file_is_refused(tmp_path):
    conn = _plain_file_db(tmp_path)
    with pytest.raises(duckdb.ConnectionException, match="different configuration"):
        duckdb.connect(str(tmp_path / "plain.duckdb"), read_only=True)
    conn.close()


def test_fact_json_serialize_sql_shows_what_the_guard_walks():
    conn = duckdb.connect()
    tree = json.loads(
        conn.execute(
            "SELECT json_serialize_sql('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d, read_csv(''x'')')"
        ).fetchone()[0]
    )
    text = json.dumps(tree)
    assert '"DELETE_QUERY_NODE"' in text
    assert '"TABLE_FUNCTION"' in text and '"function_name": "read_csv"' in text
    refused = json.loads(conn.execute("SELECT json_serialize_sql('DELETE FROM t')").fetchone()[0])
    assert refused["error"] is True
    conn.close()


def test_fact_interrupt_from_another_thread_stops_a_running_query(hardened):
    db, _ = hardened
    with db.session() as cursor:
        threading.Timer(0.3, cursor.interrupt).start()
        started = time.monotonic()
        with pytest.raises(duckdb.InterruptException):
            cursor.execute("SELECT count(*) FROM range(1e13::BIGINT)").fetchall()
        assert time.monotonic() - started < 5.0  # uninterrupted, it would run for hours
        assert cursor.execute("SELECT 1").fetchone() == (1,)


def test_memory_threads_and_spill_space_are_bounded(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    db = hardened_database(path, idle_release=None, memory_limit="256MB", threads=1)
    try:
        with db.session() as cursor:
            values = cursor.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads'), "
                "current_setting('max_temp_directory_size')"
            ).fetchone()
    finally:
        db.close()
    assert values == ("244.1 MiB", 1, "1.8 GiB")
