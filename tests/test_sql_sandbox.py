"""The sandbox of issue 11: functions on an allow-list, names resolved per scope, statements that
explode while DuckDB plans them, all run through the MCP tool and the CLI. Afterwards the database
is unchanged, no file outside the data directory was touched, the server process did not grow,
and the worker that runs the statements holds no file and has its address space capped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sql_support import (
    CANARIES,
    FileWatch,
    dump,
    files_under,
    make_server,
    result_text,
    seeded_db_path,
    with_client,
)

from mcp_state.cli import main
from mcp_state.sql import SqlEngine, hardened_database

LIMIT = 1.0
NOT_AVAILABLE = "not available"

# (statement, a fragment the refusal must contain). {outside}: a folder outside the data
# directory with canary files; {db}: the database file.
ATTACKS: list[tuple[str, str]] = [
    # Functions that take SQL text, plan it, or read settings, variables, files or internals.
    (
        "SELECT json_serialize_plan('SELECT 1 FROM main.pending_codes WHERE code = ''K7Q2ZP''', optimize := true)",
        "function json_serialize_plan",
    ),
    ("SELECT json_serialize_sql('SELECT * FROM main.users')", "function json_serialize_sql"),
    ("SELECT json_deserialize_sql('{}')", "function json_deserialize_sql"),
    ("SELECT current_setting('allowed_paths')", "function current_setting"),
    ("SELECT getvariable('secret_directory')", "function getvariable"),
    ("SELECT stats(id) FROM users", "function stats"),
    ("SELECT version()", "function version"),
    ("SELECT current_database()", "function current_database"),
    ("SELECT current_schemas(true)", "function current_schemas"),
    ("SELECT current_query()", "function current_query"),
    ("SELECT pg_get_viewdef('users')", "function pg_get_viewdef"),
    ("SELECT has_table_privilege('users', 'select')", "function has_table_privilege"),
    ("SELECT txid_current()", "function txid_current"),
    ("SELECT currval('sync_history_seq')", "function currval"),
    ("SELECT setseed(0.5)", "function setseed"),
    (
        "SELECT variant_bytes_to_variant('\\x01\\x00\\x00\\x7f\\x80\\x03\\x03\\x80\\x02\\x03\\x00\\x02\\x7f'::BLOB)::VARCHAR",
        "function variant_bytes_to_variant",
    ),
    ("SELECT __internal_compress_string_utinyint('a')", "function __internal_compress_string_utinyint"),
    ("SELECT get_block_size('memory')", "function get_block_size"),
    ("SELECT main.abs(-1)", "bare name"),
    ("SELECT system.main.lower('A')", "bare name"),
    ("SELECT sum(rows) EXPORT_STATE FROM sync_state", "EXPORT_STATE"),
    ("SELECT * FROM query('SELECT * FROM main.users')", "function query"),
    ("SELECT * FROM query_table('main.users')", "function query_table"),
    ("SELECT * FROM duckdb_settings()", "function duckdb_settings"),
    ("SELECT * FROM duckdb_databases()", "function duckdb_databases"),
    ("SELECT * FROM duckdb_secrets()", "function duckdb_secrets"),
    ("SELECT * FROM duckdb_variables()", "function duckdb_variables"),
    ("SELECT * FROM duckdb_tables()", "function duckdb_tables"),
    ("SELECT * FROM duckdb_functions()", "function duckdb_functions"),
    ("SELECT * FROM duckdb_logs()", "function duckdb_logs"),
    ("SELECT * FROM pragma_database_size()", "function pragma_database_size"),
    ("SELECT * FROM pragma_version()", "function pragma_version"),
    ("SELECT * FROM read_blob('{db}')", "function read_blob"),
    ("SELECT * FROM read_text('{db}.wal')", "function read_text"),
    ("SELECT * FROM read_csv('{outside}/canary.csv')", "function read_csv"),
    ("SELECT * FROM glob('{outside}/*')", "function glob"),
    ("SELECT * FROM parquet_metadata('{db}')", "function parquet_metadata"),
    ("SELECT * FROM main.range(3)", "bare name"),
    # CTE names outside their scope, and names of more than three parts.
    (
        "SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) t, duckdb_databases",
        "duckdb_databases is not available",
    ),
    (
        "SELECT * FROM (WITH pg_settings AS (SELECT 1) SELECT 1) t, pg_settings",
        "pg_settings is not available",
    ),
    (
        "WITH a AS (SELECT * FROM duckdb_settings), duckdb_settings AS (SELECT 1) SELECT * FROM a",
        "duckdb_settings is not available",
    ),
    ("SELECT (WITH pg_tables AS (SELECT 1) SELECT 1) AS x FROM pg_tables", "pg_tables is not available"),
    (
        "SELECT 1 WHERE EXISTS (WITH duckdb_views AS (SELECT 1) SELECT 1) AND EXISTS (FROM duckdb_views)",
        "duckdb_views is not available",
    ),
    (
        "WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT 1) SELECT 1), (FROM y)",
        "table y is not available",
    ),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT 1 FROM duckdb_settings) SELECT * FROM r",
        "duckdb_settings is not available",
    ),
    ("SELECT * FROM db.main.redacted.users", "more than 3 parts"),
    ("SELECT * FROM a.b.c.d.e", "more than 3 parts"),
    ("SELECT x.a.b.c FROM users x", "more than 3 parts"),
    ("SELECT * FROM system.main.duckdb_settings", NOT_AVAILABLE),
    ("SELECT * FROM pg_catalog.pg_settings", NOT_AVAILABLE),
    ("SELECT * FROM information_schema.character_sets", NOT_AVAILABLE),
    ("SELECT * FROM temp.main.pending_codes", NOT_AVAILABLE),
    ("DESCRIBE main.users", NOT_AVAILABLE),
    ("SUMMARIZE main.api_tokens", NOT_AVAILABLE),
    # Nested SQL through PIVOT without IN: the values are read through the same gate.
    ("PIVOT (SELECT * FROM main.users) ON role USING count(*)", NOT_AVAILABLE),
    ("PIVOT users ON current_setting('x') USING count(*)", "cannot pivot on constant"),
]

# Statements that explode while DuckDB plans or runs them: stopped at the memory ceiling or the
# time limit, each within the limit plus a second, and the server keeps answering.
EXPLOSIVE = [
    "SELECT len(range(100000000))",
    "SELECT length(repeat('a', 2000000000))",
    "SELECT list_sum(range(300000000))",
    "SELECT len(list_value(range(60000000), range(60000000)))",
    "SELECT count(*) FROM range(1e13::BIGINT)",
    "SELECT md5(repeat(md5(''), 100000000))",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT string_agg(repeat('x', 100000), '') FROM range(100000)",
]


def _expand(sql: str, outside: Path, db: Path) -> str:
    return sql.replace("{outside}", str(outside)).replace("{db}", str(db))


def _status(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def test_the_corpus_is_large_and_distinct():
    statements = [sql for sql, _ in ATTACKS] + EXPLOSIVE
    assert len(statements) >= 50 and len(set(statements)) == len(statements)


@pytest.fixture
def arena(tmp_path):
    data_dir = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.csv").write_text("secret\nCANARY-file-csv-0451\n")
    path = seeded_db_path(data_dir)
    return tmp_path, data_dir, outside, path


@pytest.mark.slow
def test_the_corpus_through_mcp_changes_nothing_touches_no_file_and_keeps_memory_flat(arena):
    tmp_path, data_dir, outside, path = arena
    before = dump(path)
    files_before = files_under(tmp_path, excluding=data_dir)
    watch = FileWatch(outside, tmp_path)
    watch.events()

    async def run_all(client):
        await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM users"})  # warm: workers up
        # Reset the peak first: this process (a pytest worker) ran other tests whose peaks would count.
        Path("/proc/self/clear_refs").write_text("5")
        baseline = _status("self", "VmRSS")
        refused = []
        for sql, _ in ATTACKS:
            result = await client.call_tool("sql_query", {"sql": _expand(sql, outside, path)})
            refused.append((sql, result.is_error, result_text(result)))
        bounded = []
        for sql in EXPLOSIVE:
            started = time.monotonic()
            result = await client.call_tool("sql_query", {"sql": sql})
            bounded.append((sql, result.is_error, result_text(result), time.monotonic() - started))
        grown = _status("self", "VmHWM") - baseline
        ok = await client.call_tool("sql_query", {"sql": "SELECT count(*) AS n FROM users"})
        return refused, bounded, grown, ok

    refused, bounded, grown, ok = with_client(make_server(path, timeout=LIMIT), run_all)
    events = watch.events()
    watch.close()

    for (sql, is_error, text), (_, reason) in zip(refused, ATTACKS, strict=True):
        assert is_error, f"not refused: {sql}"
        assert reason.lower() in text.lower() and "[invalid_sql]" in text, (sql, text)
        assert not any(c in text for c in (*CANARIES, "CANARY-file")), sql
    for sql, is_error, text, seconds in bounded:
        assert is_error and ("[timeout]" in text or "more memory" in text), (sql, text)
        assert seconds <= LIMIT + 1.0, (sql, seconds)
    # The statements ran in the worker: the server process did not grow with them.
    assert grown < 150 * 2**20, grown / 2**20
    assert not ok.is_error and ok.structured_content["rows"] == [[4]]
    assert dump(path) == before
    assert events == [], f"files outside the data directory were touched: {events}"
    assert files_under(tmp_path, excluding=data_dir) == files_before


@pytest.mark.slow
def test_the_corpus_through_the_cli(arena, capsys, monkeypatch):
    tmp_path, data_dir, outside, path = arena
    before = dump(path)
    files_before = files_under(tmp_path, excluding=data_dir)
    for sql, reason in ATTACKS:
        assert main(["query", "--db", str(path), _expand(sql, outside, path)]) == 1, sql
        err = capsys.readouterr().err
        assert err.startswith("mcp-state query: error: ") and reason.lower() in err.lower(), (sql, err)
        assert "Traceback" not in err and not any(c in err for c in CANARIES)
    assert dump(path) == before
    assert files_under(tmp_path, excluding=data_dir) == files_before


def test_the_worker_holds_no_file_and_its_address_space_is_capped(arena):
    _, _, _, path = arena
    db = hardened_database(path, idle_release=None)
    engine = SqlEngine(db, timeout=LIMIT, memory_ceiling=512 * 2**20)
    try:
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]
        pids = engine.pool.pids()
        assert pids
        for pid in pids:
            opened = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            assert not any(str(path.parent) in target for target in opened), opened
            limits = Path(f"/proc/{pid}/limits").read_text()
            line = next(line for line in limits.splitlines() if line.startswith("Max address space"))
            ceiling = int(line.split()[3])
            assert ceiling <= _status(pid, "VmSize") + 512 * 2**20 + 64 * 2**20
        # What reaches the engine past the guard still finds no file: the instance has none.
        with pytest.raises(Exception, match=r"more memory|time limit"):
            engine.query("SELECT len(range(200000000))")
        assert engine.query("SELECT 1 AS one")["rows"] == [[1]]
    finally:
        engine.close()
        db.close()


def test_a_cte_is_a_cte_only_where_duckdb_binds_it(arena):
    _, _, _, path = arena
    db = hardened_database(path, idle_release=None)
    engine = SqlEngine(db, timeout=5.0)
    try:
        legit = {
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT y FROM b": [[2]],
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT max(n) FROM r": [
                [3]
            ],
            "WITH users AS (SELECT 7 AS x) SELECT * FROM users": [[7]],
            "WITH t AS (SELECT 1 AS x) SELECT (SELECT x FROM t), (SELECT count(*) FROM (FROM t))": [[1, 1]],
            "PIVOT (SELECT role FROM users) ON role USING count(*)": None,
        }
        for sql, rows in legit.items():
            result = engine.query(sql)
            assert rows is None or result["rows"] == rows, (sql, result)
    finally:
        engine.close()
        db.close()


def test_the_console_example_in_docs_prints_what_it_shows(arena):
    import re
    import shlex
    import subprocess
    import sys

    tmp_path, data_dir, _, _ = arena
    page = (Path(__file__).resolve().parent.parent / "docs" / "sandbox.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", page, re.DOTALL)
    assert blocks
    for block in blocks:
        command, *shown = block.strip().splitlines()
        assert command.startswith("$ mcp-state ")
        args = shlex.split(command[2:])[1:]
        done = subprocess.run(
            [sys.executable, "-m", "mcp_state", *args],
            cwd=tmp_path,
            env={**os.environ, "DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.stdout + done.stderr).splitlines() == shown


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_blob('{db}')",
        "SELECT * FROM read_text('{db}.wal')",
        "SELECT * FROM read_csv('{outside}/canary.csv')",
        "SELECT * FROM glob('{outside}/*')",
        "ATTACH '{db}' AS stolen (READ_ONLY)",
        "COPY (SELECT 1) TO '{outside}/out.csv'",
        "SET enable_external_access = true",
        "SELECT current_setting('allowed_paths')",
    ],
)
def test_fact_the_worker_instance_reads_no_file_even_without_the_gate(arena, sql):
    """DuckDB 2.0.1 as the worker sets it up: no database file, external access off, locked."""
    import duckdb

    from mcp_state.sql.runner import connect

    _, _, outside, path = arena
    conn = connect("256MB", 1)
    try:
        if "current_setting" in sql:
            assert conn.execute(sql).fetchone() in (("",), ([],), (None,))
            return
        with pytest.raises(duckdb.Error, match=r"(?i)permission|disabled|locked"):
            conn.execute(_expand(sql, outside, path)).fetchall()
    finally:
        conn.close()
    assert not (outside / "out.csv").exists()


def test_a_tiny_time_limit_times_out_cleanly_in_every_phase(arena):
    """With a 1 ms limit the catalog load itself runs out of time: a timeout error, never a raw one.
    (DuckDB checks for the interrupt between chunks, so a short query may still be answered: the
    last statement would run for hours, and must time out.)"""
    from mcp_state.errors import QueryTimeoutError

    _, _, _, path = arena
    db = hardened_database(path, idle_release=None)
    engine = SqlEngine(db, timeout=0.001)
    try:
        outcomes = set()
        for sql in (
            "SELECT count(*) FROM users",
            "SELECT 1",
            "SELECT count(*) FROM range(100000000)",
            "SELECT count(*) FROM range(1e13::BIGINT)",
        ):
            try:
                engine.query(sql)
                outcomes.add("answered")
            except QueryTimeoutError as exc:
                assert "time limit" in str(exc)
                outcomes.add("timeout")
        assert "timeout" in outcomes
    finally:
        engine.close()
        db.close()
