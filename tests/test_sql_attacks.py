"""The attack corpus: statements that try to write, read files, change settings, run nested SQL
or reveal secrets. Each is refused with a reason in plain words; after the whole run through the
MCP tool the database content is unchanged and no file outside the data directory was touched."""

from __future__ import annotations

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

from mcp_state.errors import InvalidSQLError
from mcp_state.sql import SqlEngine, hardened_database

WRITE = "only read"  # "only read-only statements are allowed" / "only reads are allowed"
ONE = "only one read-only statement"
NOT_AVAILABLE = "not available"
FILES = "files"
SECRET_TABLE = "redacted views"

# (statement, a fragment the refusal must contain). {outside} is a directory outside the data
# directory holding canary.csv / canary.json; {db} is the database file itself.
ATTACKS: list[tuple[str, str]] = [
    # Writes, plain and hidden in CTEs and subqueries.
    ("DELETE FROM users", "DELETE"),
    ("delete from audit_log where true", "DELETE"),
    ("TRUNCATE users", "DELETE"),
    ("INSERT INTO users (id, email) VALUES ('x', 'x@example.com')", "INSERT"),
    ("INSERT INTO audit_log (id, action) SELECT 'z', 'x'", "INSERT"),
    ("UPDATE users SET role = 'admin'", "UPDATE"),
    ("MERGE INTO users USING (SELECT 'u1' AS id) s ON users.id = s.id WHEN MATCHED THEN DELETE", "MERGE"),
    ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "DELETE"),
    (
        "WITH i AS (INSERT INTO audit_log (id, action) VALUES ('z', 'x') RETURNING *) SELECT * FROM i",
        "INSERT",
    ),
    ("WITH u AS (UPDATE users SET role = 'admin' RETURNING id) SELECT count(*) FROM u", "UPDATE"),
    ("SELECT * FROM (WITH d AS (DELETE FROM audit_log RETURNING id) SELECT * FROM d)", "DELETE"),
    ("SELECT (WITH d AS (DELETE FROM users RETURNING 1) SELECT count(*) FROM d)", "DELETE"),
    ("SELECT 1 WHERE EXISTS (WITH d AS (DELETE FROM users RETURNING 1) SELECT * FROM d)", "DELETE"),
    ("WITH a AS (SELECT 1), b AS (DELETE FROM knowledge_votes RETURNING 1) FROM a", "DELETE"),
    ("EXPLAIN ANALYZE DELETE FROM users", "sql_explain"),
    ("EXPLAIN DELETE FROM users", "sql_explain"),
    ("EXPLAIN ANALYZE SELECT 1", "sql_explain"),
    # Schema changes, temporary objects, macros.
    ("DROP TABLE users", WRITE),
    ("DROP VIEW redacted.users", WRITE),
    ("ALTER TABLE users ADD COLUMN x INTEGER", WRITE),
    ("CREATE TABLE stolen AS SELECT * FROM users", WRITE),
    ("CREATE TEMP TABLE t AS SELECT 1", WRITE),
    ("CREATE TEMPORARY VIEW v AS SELECT * FROM main.users", WRITE),
    ("CREATE MACRO m(x) AS x + 1", WRITE),
    ("CREATE TEMP MACRO leak() AS TABLE SELECT * FROM main.users", WRITE),
    ("CREATE SEQUENCE s2", WRITE),
    ("CREATE SCHEMA evil", WRITE),
    ("CREATE OR REPLACE VIEW redacted.users AS SELECT * FROM main.users", WRITE),
    ("CREATE TYPE mood AS ENUM ('a', 'b')", WRITE),
    ("CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')", WRITE),
    ("COMMENT ON TABLE users IS 'x'", WRITE),
    # Several statements, transactions, comment and case tricks.
    ("COMMIT; DROP TABLE users", ONE),
    ("SELECT 1; DELETE FROM users", ONE),
    ("SELECT 1; SELECT 2", ONE),
    ("sElEcT 1; dElEtE fRoM users", ONE),
    ("SELECT 1 /* ; */ ; DROP TABLE users -- ;", ONE),
    ("/* harmless */ DELETE /* really */ FROM users -- end", "DELETE"),
    ("-- SELECT 1\nDELETE FROM users", "DELETE"),
    ("BEGIN TRANSACTION", WRITE),
    ("ROLLBACK", WRITE),
    ("ABORT", WRITE),
    (";", "no SQL statement"),
    ("-- only a comment", "no SQL statement"),
    # Settings and the session.
    ("SET threads = 1", WRITE),
    ("SET GLOBAL enable_external_access = true", WRITE),
    ("SET lock_configuration = false", WRITE),
    ("RESET memory_limit", WRITE),
    ("SET search_path = 'main'", WRITE),
    ("USE main", WRITE),
    ("SET VARIABLE x = 1", WRITE),
    ("PRAGMA threads = 1", WRITE),
    ("PRAGMA enable_profiling", WRITE),
    ("PRAGMA database_list", WRITE),
    ("PRAGMA show_tables", WRITE),
    ("CALL duckdb_settings()", WRITE),
    ("SELECT current_setting('temp_directory')", "settings are not visible"),
    ("SELECT CURRENT_SETTING('memory_limit')", "settings are not visible"),
    ("SELECT * FROM duckdb_settings()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_databases()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_extensions()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_temporary_files()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_memory()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_secrets()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_logs()", NOT_AVAILABLE),
    ("SELECT * FROM duckdb_profiling_settings()", NOT_AVAILABLE),
    ("SELECT * FROM pragma_database_size()", NOT_AVAILABLE),
    ("SELECT * FROM pragma_storage_info('users')", NOT_AVAILABLE),
    ("SELECT * FROM pragma_table_info('main.users')", NOT_AVAILABLE),
    ("SELECT * FROM histogram_values(main.users, password_hash)", NOT_AVAILABLE),
    ("SHOW DATABASES", NOT_AVAILABLE),
    ("SELECT getenv('HOME')", NOT_AVAILABLE),
    ("SELECT get_block_size('system_db')", NOT_AVAILABLE),
    # Extensions.
    ("INSTALL httpfs", WRITE),
    ("LOAD httpfs", WRITE),
    ("FORCE INSTALL spatial FROM community", WRITE),
    ("UPDATE EXTENSIONS", WRITE),
    # Files: attach, copy, export, readers, replacement scans, globbing.
    ("ATTACH '{outside}/evil.duckdb' AS evil", WRITE),
    ("ATTACH ':memory:' AS m", WRITE),
    ("DETACH system_db", WRITE),
    ("COPY users TO '{outside}/users.csv'", WRITE),
    ("COPY (SELECT * FROM users) TO '{outside}/q.parquet' (FORMAT parquet)", WRITE),
    ("COPY users FROM '{outside}/canary.csv'", WRITE),
    ("COPY FROM DATABASE system_db TO memory", WRITE),
    ("EXPORT DATABASE '{outside}/export'", WRITE),
    ("IMPORT DATABASE '{outside}/export'", WRITE),
    ("SELECT * FROM read_csv('{outside}/canary.csv')", FILES),
    ("SELECT * FROM read_csv_auto('{outside}/canary.csv')", FILES),
    ("SELECT * FROM READ_CSV('{outside}/canary.csv')", FILES),
    ("SELECT * FROM read_text('{outside}/canary.csv')", FILES),
    ("SELECT * FROM read_blob('{outside}/canary.csv')", FILES),
    ("SELECT * FROM read_json('{outside}/canary.json')", FILES),
    ("SELECT * FROM read_parquet('{outside}/x.parquet')", FILES),
    ("SELECT * FROM parquet_metadata('{outside}/x.parquet')", FILES),
    ("SELECT * FROM sniff_csv('{outside}/canary.csv')", FILES),
    ("SELECT * FROM read_duckdb('{db}')", FILES),
    ("SELECT * FROM read_csv('/etc/passwd')", FILES),
    ("SELECT * FROM glob('{outside}/*')", NOT_AVAILABLE),
    ("SELECT * FROM '{outside}/canary.csv'", FILES),
    ("FROM '{outside}/*.csv'", FILES),
    ("SELECT * FROM 'https://example.com/data.csv'", FILES),
    ("SELECT * FROM range(3) r, (FROM '{outside}/canary.csv')", FILES),
    ("SELECT * FROM generate_series(1, 3), read_csv('{outside}/canary.csv')", FILES),
    ("SELECT * FROM sql", NOT_AVAILABLE),  # a Python variable's name: no replacement scan
    # SQL run from inside a query.
    ("SELECT * FROM query('SELECT * FROM main.users')", "nested"),
    ("SELECT * FROM query_table('users')", "nested"),
    ("SELECT * FROM query_table(['main.users'])", "nested"),
    (
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
        "'WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d'))",
        "nested",
    ),
    ("PRAGMA json_execute_serialized_sql('x')", WRITE),
    ("PREPARE p AS SELECT * FROM main.users", WRITE),
    ("EXECUTE p", WRITE),
    ("DEALLOCATE p", WRITE),
    # Sequences and other side effects.
    ("SELECT nextval('audit_log_seq')", "changes or reads server state"),
    ("SELECT NEXTVAL('audit_log_seq')", "changes or reads server state"),
    ("SELECT \"nextval\"('audit_log_seq')", "changes or reads server state"),
    ("SELECT id, nextval('sync_history_seq') FROM users", "changes or reads server state"),
    ("SELECT currval('audit_log_seq')", "changes or reads server state"),
    ("SELECT setval('audit_log_seq', 1)", "changes or reads server state"),
    ("SELECT setseed(0.5)", "changes or reads server state"),
    ("SELECT write_log('x')", "changes or reads server state"),
    ("SELECT pg_sleep(100)", "does not wait"),
    ("SELECT sleep_ms(100000)", "does not wait"),
    ("CHECKPOINT", WRITE),
    ("FORCE CHECKPOINT", WRITE),
    ("SELECT * FROM checkpoint()", NOT_AVAILABLE),
    ("SELECT * FROM force_checkpoint()", NOT_AVAILABLE),
    ("VACUUM", WRITE),
    ("ANALYZE", WRITE),
    ("SELECT * FROM enable_logging()", NOT_AVAILABLE),
    # Secrets by every spelling.
    ("SELECT * FROM main.users", SECRET_TABLE),
    ("SELECT * FROM system_db.main.users", SECRET_TABLE),
    ('SELECT * FROM "main"."users"', SECRET_TABLE),
    ("SELECT * FROM MAIN.USERS", SECRET_TABLE),
    ("SELECT * FROM system_db.users", SECRET_TABLE),
    ("SELECT to_json(u) FROM main.users u", SECRET_TABLE),
    ("SELECT u FROM main.users u", SECRET_TABLE),
    ("SELECT string_agg(password_hash, ',') FROM main.users", SECRET_TABLE),
    ("SELECT max(code) FROM main.pending_codes", SECRET_TABLE),
    ("FROM main.pending_codes", SECRET_TABLE),
    ("SELECT token_hash FROM main.api_tokens", SECRET_TABLE),
    ("SELECT CAST(password_hash AS INTEGER) FROM main.users", SECRET_TABLE),
    (
        "SELECT * FROM users WHERE id IN (SELECT id FROM main.users WHERE password_hash LIKE 'C%')",
        SECRET_TABLE,
    ),
    ("SELECT * FROM users JOIN main.users m USING (id)", SECRET_TABLE),
    ("SELECT * FROM users, LATERAL (SELECT password_hash FROM main.users)", SECRET_TABLE),
    ("WITH x AS (SELECT * FROM main.users) SELECT * FROM x", SECRET_TABLE),
    ("DESCRIBE main.users", SECRET_TABLE),
    ("SUMMARIZE main.users", SECRET_TABLE),
    ("SUMMARIZE SELECT * FROM main.users", SECRET_TABLE),
    ("SHOW main.users", SECRET_TABLE),
    ("PIVOT main.users ON role IN ('admin') USING count(*)", SECRET_TABLE),
    ("SELECT * FROM temp.main.users", NOT_AVAILABLE),
    ("SELECT password_hash FROM users", "password_hash"),  # the view has no such column
    ("SELECT code FROM pending_codes", "code"),
    ("SELECT * FROM users AT (VERSION => 1)", "time travel"),
    # Parameters, size, dynamic PIVOT.
    ("SELECT ?", "parameters"),
    ("SELECT $1", "parameters"),
    ("SELECT " + "1 + " * 6000 + "1", "character"),
]


def _expand(sql: str, outside: Path, db: Path) -> str:
    return sql.replace("{outside}", str(outside)).replace("{db}", str(db))


def test_the_corpus_is_large_and_distinct():
    statements = [sql for sql, _ in ATTACKS]
    assert len(statements) >= 80
    assert len(set(statements)) == len(statements)


@pytest.fixture(scope="module")
def attack_engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    path = seeded_db_path(root / "data")
    db = hardened_database(path, idle_release=None)
    yield SqlEngine(db, timeout=5.0), root / "outside", path
    db.close()


@pytest.mark.parametrize(("sql", "reason"), ATTACKS, ids=[f"{i:03d}" for i in range(len(ATTACKS))])
def test_engine_refuses(attack_engine, sql, reason):
    engine, outside, path = attack_engine
    with pytest.raises(InvalidSQLError) as caught:
        engine.query(_expand(sql, outside, path))
    message = str(caught.value)
    assert reason.lower() in message.lower(), message
    assert not any(canary in message for canary in CANARIES)


def test_attack_corpus_through_mcp_changes_nothing_and_touches_no_file(tmp_path):
    data_dir = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.csv").write_text("secret\nCANARY-file-csv-0451\n")
    (outside / "canary.json").write_text('{"secret": "CANARY-file-json-0452"}')
    path = seeded_db_path(data_dir)
    before = dump(path)
    files_before = files_under(tmp_path, excluding=data_dir)
    watch = FileWatch(outside, tmp_path)
    watch.events()  # nothing before the run counts

    async def run_all(client):
        outcomes = []
        for sql, _ in ATTACKS:
            result = await client.call_tool("sql_query", {"sql": _expand(sql, outside, path)})
            outcomes.append((sql, result.is_error, result_text(result)))
        # The server still serves after the whole corpus.
        ok = await client.call_tool("sql_query", {"sql": "SELECT count(*) AS n FROM users"})
        return outcomes, ok

    outcomes, ok = with_client(make_server(path), run_all)
    events = watch.events()
    watch.close()

    accepted = [sql for sql, is_error, _ in outcomes if not is_error]
    assert accepted == [], f"attacks that were not refused: {accepted}"
    for (sql, _, text), (_, reason) in zip(outcomes, ATTACKS, strict=True):
        assert reason.lower() in text.lower(), f"{sql!r} refused without naming why: {text}"
        assert "[invalid_sql]" in text or "[timeout]" in text, text
    leaked = [(sql, c) for sql, _, text in outcomes for c in (*CANARIES, "CANARY-file") if c in text]
    assert leaked == []
    assert not ok.is_error and ok.structured_content["rows"] == [[4]]

    assert dump(path) == before, "the database content changed during the attack run"
    assert events == [], f"files outside the data directory were touched: {events}"
    files_after = files_under(tmp_path, excluding=data_dir)
    assert files_after == files_before
