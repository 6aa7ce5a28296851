"""Read-only SQL on PostgreSQL: the attack corpus, each statement refused twice over.

Every attack is refused by the gate (``pg_guard``, with a reason in plain words) AND, with the
gate switched off (``PgSqlEngine(guard=False)``), by PostgreSQL itself: the reader role, the
read-only transaction, ``DECLARE CURSOR``, the limits. A few statements PostgreSQL runs
harmlessly as the reader (``pg_stat_activity``, ``pg_notify``, ``pg_advisory_lock``) are checked
for what they must not do: show another role's query text, deliver a notification, keep a lock.
No canary secret appears in any answer; the database content is unchanged afterwards.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from pg_support import admin_url
from sql_pg_support import CANARIES, dump_pg, make_pg_server, seeded_pg_database
from sql_support import result_text, with_client

from mcp_state.errors import InvalidSQLError, QueryTimeoutError, StateError
from mcp_state.sql.pg_engine import PgSqlEngine

pytestmark = pytest.mark.postgres

WRITE = "only read"
ONE = "only one read-only statement"
NOT_AVAILABLE = "not available"
SECRET = "redacted views"

# (statement, a fragment of the gate's refusal). {login} is the server's login role.
ATTACKS: list[tuple[str, str]] = [
    # Writes, plain and hidden in CTEs and subqueries.
    ("DELETE FROM users", "DELETE"),
    ("TRUNCATE users", WRITE),
    ("INSERT INTO users (id, email) VALUES ('x', 'x@example.com')", "INSERT"),
    ("UPDATE users SET role = 'admin'", "UPDATE"),
    ("MERGE INTO users u USING (SELECT 'u1' AS id) s ON u.id = s.id WHEN MATCHED THEN DELETE", "MERGE"),
    ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "DELETE"),
    (
        "WITH i AS (INSERT INTO audit_log (id, action) VALUES ('z', 'x') RETURNING *) SELECT * FROM i",
        "INSERT",
    ),
    ("WITH u AS (UPDATE public.users SET role = 'admin' RETURNING id) SELECT count(*) FROM u", "UPDATE"),
    ("SELECT * FROM (WITH d AS (DELETE FROM audit_log RETURNING id) SELECT * FROM d) s", "DELETE"),
    ("EXPLAIN ANALYZE DELETE FROM users", "sql_explain"),
    ("SELECT * INTO stolen FROM users", "INTO"),
    ("SELECT * FROM users FOR UPDATE", "FOR UPDATE"),
    # Schema changes, functions, grants.
    ("DROP TABLE users", WRITE),
    ("ALTER TABLE users ADD COLUMN x integer", WRITE),
    ("CREATE TABLE stolen AS SELECT * FROM public.users", WRITE),
    ("CREATE TEMP TABLE t AS SELECT 1", WRITE),
    (
        "CREATE FUNCTION peek2() RETURNS text LANGUAGE sql AS $$SELECT password_hash FROM public.users$$",
        WRITE,
    ),
    ("CREATE OR REPLACE VIEW redacted.users AS SELECT * FROM public.users", WRITE),
    ("GRANT SELECT ON public.users TO PUBLIC", WRITE),
    ("DO $$BEGIN PERFORM 1; END$$", WRITE),
    ("COMMENT ON TABLE users IS 'x'", WRITE),
    # Several statements, transactions, the session and the role.
    ("COMMIT; DROP TABLE users", ONE),
    ("SELECT 1; SET ROLE {login}", ONE),
    ("SELECT 1 /* ; */ ; DELETE FROM users -- ;", ONE),
    ("BEGIN", WRITE),
    ("SET ROLE {login}", WRITE),
    ("RESET ROLE", WRITE),
    ("SET SESSION AUTHORIZATION {login}", WRITE),
    ("SET statement_timeout = 0", WRITE),
    ("SET search_path = public", WRITE),
    (
        "SELECT set_config('role', '{login}', true), query_to_xml('SELECT password_hash FROM public.users', true, true, '')",
        NOT_AVAILABLE,
    ),
    ("SELECT set_config('statement_timeout', '0', true), pg_sleep(30)", NOT_AVAILABLE),
    ("SELECT set_config('role', '{login}', true)", "set_config"),
    ("SELECT query_to_xml('SELECT password_hash FROM public.users', true, true, '')", "SQL text"),
    ("SELECT current_setting('data_directory')", "settings"),
    ("SELECT current_setting('hba_file')", "settings"),
    # Files, programs, large objects, other databases.
    ("COPY users TO PROGRAM 'id'", "COPY"),
    ("COPY (SELECT * FROM public.users) TO '/tmp/mcp_state_stolen.csv'", "COPY"),
    ("COPY users FROM '/etc/passwd'", "COPY"),
    ("SELECT pg_read_file('/etc/passwd')", "files"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "files"),
    ("SELECT pg_ls_dir('.')", "files"),
    ("SELECT * FROM pg_ls_dir('.')", "files"),
    ("SELECT pg_stat_file('postgresql.conf')", "files"),
    ("SELECT lo_import('/etc/passwd')", "files"),
    ("SELECT lo_export(1, '/tmp/mcp_state_lo')", "files"),
    ("SELECT dblink('dbname=postgres', 'SELECT 1')", "other databases"),
    ("SELECT pg_sleep(30)", "does not wait"),
    ("SELECT nextval('audit_log_seq')", "sequence"),
    # Secrets by every spelling.
    ("SELECT password_hash FROM public.users", SECRET),
    ('SELECT * FROM "public"."users"', SECRET),
    ("SELECT to_json(u) FROM public.users u", SECRET),
    ("SELECT string_agg(password_hash, ',') FROM public.users", SECRET),
    ("SELECT code FROM public.pending_codes", SECRET),
    ("SELECT token_hash FROM public.api_tokens", SECRET),
    ("SELECT CAST(password_hash AS integer) FROM public.users", SECRET),
    ("SELECT * FROM users WHERE id IN (SELECT id FROM public.users WHERE password_hash LIKE 'C%')", SECRET),
    ("WITH x AS (SELECT * FROM public.users) SELECT * FROM x", SECRET),
    ("SELECT public.peek()", NOT_AVAILABLE),  # a function someone created, reading the table
    ("SELECT * FROM pg_catalog.pg_authid", NOT_AVAILABLE),
    ("SELECT passwd FROM pg_shadow", NOT_AVAILABLE),
    ("SELECT $1", "parameters"),
]

# Run harmlessly by PostgreSQL as the reader; checked below for what they must not do.
HARMLESS_TO_ENGINE = {
    "SELECT * FROM pg_stat_activity": "table pg_stat_activity is not available",
    "SELECT pg_notify('mcp_state_changes', '*')": "pg_notify is not available",
    "SELECT pg_advisory_lock(4242)": "pg_advisory_lock is not available",
}


def test_the_corpus_is_large_and_distinct():
    statements = [sql for sql, _ in ATTACKS]
    assert len(statements) >= 60 and len(set(statements)) == len(statements)


@pytest.fixture(scope="module")
def arena():
    """A seeded database, an engine with the gate and one without, and the login role's name."""
    with seeded_pg_database("attacks") as url:
        guarded, bare = PgSqlEngine(url, timeout=2.0), PgSqlEngine(url, timeout=1.0, guard=False)
        with psycopg.connect(url) as conn:
            login = conn.execute("SELECT current_user").fetchone()[0]
        yield url, guarded, bare, login
        guarded.close()
        bare.close()


def _expand(sql: str, login: str) -> str:
    return sql.replace("{login}", login)


@pytest.mark.parametrize(("sql", "reason"), ATTACKS, ids=[f"{i:03d}" for i in range(len(ATTACKS))])
def test_refused_by_the_gate_and_by_postgresql(arena, sql, reason):
    _, guarded, bare, login = arena
    with pytest.raises(InvalidSQLError) as by_gate:
        guarded.query(_expand(sql, login))
    assert reason.lower() in str(by_gate.value).lower(), str(by_gate.value)
    with pytest.raises((InvalidSQLError, QueryTimeoutError)) as by_engine:
        bare.query(_expand(sql, login))
    for message in (str(by_gate.value), str(by_engine.value)):
        assert not any(canary in message for canary in CANARIES), message


def test_harmless_to_the_engine_but_refused_by_the_gate(arena):
    url, guarded, bare, _ = arena
    for sql, reason in HARMLESS_TO_ENGINE.items():
        with pytest.raises(InvalidSQLError, match=reason):
            guarded.query(sql)
    with psycopg.connect(url, autocommit=True) as other, psycopg.connect(url, autocommit=True) as listener:
        other.execute("SELECT 'CANARY-activity-5150'")  # another session's last query text
        listener.execute("LISTEN mcp_state_changes")
        rows = bare.query("SELECT query FROM pg_stat_activity", limit=1000)["rows"]
        assert rows and not any("CANARY" in str(row[0]) for row in rows)
        assert "<insufficient privilege>" in {row[0] for row in rows}
        bare.query("SELECT pg_notify('mcp_state_changes', '*')")  # rolled back: never delivered
        listener.execute("SELECT 1")
        assert list(listener.notifies(timeout=0.2, stop_after=1)) == []
        bare.query("SELECT pg_advisory_lock(4242)")  # the engine releases session locks after each call
        assert other.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)


def test_the_corpus_through_mcp_changes_nothing(arena):
    url, guarded, _, login = arena
    guarded.query("SELECT 1")  # the reader role exists before the dump
    before = dump_pg(url)

    async def run_all(client):
        outcomes = []
        for sql, _ in ATTACKS:
            result = await client.call_tool("sql_query", {"sql": _expand(sql, login)})
            outcomes.append((sql, result.is_error, result_text(result)))
        ok = await client.call_tool("sql_query", {"sql": "SELECT count(*) AS n FROM users"})
        return outcomes, ok

    outcomes, ok = with_client(make_pg_server(url), run_all)
    assert [sql for sql, is_error, _ in outcomes if not is_error] == []
    for sql, _, text in outcomes:
        assert "[invalid_sql]" in text, (sql, text)
        assert not any(c in text for c in CANARIES), (sql, text)
    assert not ok.is_error and ok.structured_content["rows"] == [[4]]
    assert dump_pg(url) == before, "the database content changed during the attack run"


def test_the_reader_role_is_confined(arena):
    url, guarded, _, login = arena
    reader = guarded.query("SELECT current_user")["rows"][0][0]
    assert reader.startswith("mcp_state_sql_") and reader != login
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = %s",
            [reader],
        ).fetchone()
        assert row == (False, False, False, False, False)
        assert not conn.execute(
            "SELECT has_table_privilege(%s, 'public.users', 'SELECT')", [reader]
        ).fetchone()[0]
        assert conn.execute(
            "SELECT has_table_privilege(%s, 'redacted.users', 'SELECT')", [reader]
        ).fetchone()[0]
        assert not conn.execute(
            "SELECT has_function_privilege(%s, 'pg_catalog.set_config(text, text, boolean)', 'EXECUTE')",
            [reader],
        ).fetchone()[0]


@pytest.mark.slow  # a role and a database of its own
def test_a_role_that_cannot_be_made_says_what_an_admin_must_run(arena):
    url, _, _, _ = arena
    login, database = f"mcp_state_weak_{os.getpid()}", f"mcp_state_weakdb_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {login}")
        conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD 'pw-9f81'")
    try:
        with psycopg.connect(url, autocommit=True) as conn:  # a fresh database: no reader role yet
            conn.execute(f"CREATE DATABASE {database} OWNER {login}")
            host = conn.info.host, conn.info.port
        weak = f"postgresql://{login}:pw-9f81@{host[0]}:{host[1]}/{database}"
        with psycopg.connect(weak, autocommit=True) as conn:  # the database's owner, without CREATEROLE
            conn.execute("CREATE SCHEMA redacted; CREATE VIEW redacted.t AS SELECT 1 AS x")
        engine = PgSqlEngine(weak)
        with pytest.raises(StateError) as caught:
            engine.query("SELECT 1")
        message = str(caught.value)
        assert "\n" not in message and "An admin must run once" in message
        assert f'CREATE ROLE "mcp_state_sql_{database}" NOLOGIN' in message
        assert "REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC" in message
        assert "pw-9f81" not in message
        engine.close()
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {login}")


def test_the_duckdb_attack_corpus_is_refused_on_postgresql_too(arena):
    """tests/test_sql_attacks.py's statements (DuckDB's files, settings, nested SQL, secrets):
    each refused by the gate; with the gate off, none reveals a secret or changes anything."""
    from test_sql_attacks import ATTACKS as DUCKDB_ATTACKS

    url, guarded, bare, _ = arena
    guarded.query("SELECT 1")  # the reader role exists before the dump
    before = dump_pg(url)
    ran = []
    for sql, _ in DUCKDB_ATTACKS:
        text = sql.replace("{outside}", "/tmp").replace("{db}", "/tmp/state.duckdb")
        with pytest.raises(InvalidSQLError) as refused:
            guarded.query(text)
        assert not any(c in str(refused.value) for c in CANARIES), text
        try:
            shown = repr(bare.query(text))
            ran.append(text)
        except StateError as exc:
            shown = str(exc)
        assert not any(c in shown for c in CANARIES), text
    assert dump_pg(url) == before
    assert ran == ["SELECT setseed(0.5)"]  # the only one PostgreSQL runs: it seeds this session's random()
