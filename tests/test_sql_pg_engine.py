"""Read-only SQL on PostgreSQL: analysis queries answer right, limits hold, the schema names the dialect.

The rows expected are worked out by hand from the seed in sql_support.py."""

from __future__ import annotations

import resource
import threading
import time

import psycopg
import pytest
from sql_pg_support import CANARIES, make_pg_server, seeded_pg_database
from sql_support import result_text, with_client

from mcp_state.errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    InvalidSQLError,
    NotFoundError,
    QueryTimeoutError,
)
from mcp_state.schema import TABLE_DESCRIPTIONS
from mcp_state.server import ServerSettings, build_server
from mcp_state.sql.engine import open_engine
from mcp_state.sql.pg_engine import Deadlines, PgSqlEngine

pytestmark = pytest.mark.postgres

VIEWS = sorted(TABLE_DESCRIPTIONS)  # every table has a redacted view of the same name

LEGIT: list[tuple[str, list[list[object]]]] = [
    ("SELECT count(*) AS n FROM users", [[4]]),
    (
        "SELECT id, has_password, has_setup_token, has_reset_token FROM users ORDER BY id",
        [
            ["u1", True, False, True],
            ["u2", True, True, False],
            ["u3", False, True, False],
            ["u4", True, False, False],
        ],
    ),
    (
        "SELECT action, count(*) FROM audit_log GROUP BY action ORDER BY action",
        [["approve_knowledge", 4], ["record_sync", 2], ["vote", 4]],
    ),
    (
        "SELECT user_id, count(*) FILTER (WHERE result = 'ok') AS ok FROM audit_log GROUP BY 1 ORDER BY 1",
        [["u1", 5], ["u2", 2], ["u3", 1], ["u4", 1]],
    ),
    (
        "SELECT params->>'item' AS item, count(*) FROM audit_log GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        [["k1", 4]],
    ),
    ("SELECT sum((params->>'vote')::int) FROM audit_log WHERE action = 'vote'", [[0]]),
    (
        "SELECT date_trunc('day', timestamp)::date AS day, count(*) FROM audit_log GROUP BY 1 ORDER BY 1",
        [["2026-03-20", 3], ["2026-03-21", 3], ["2026-03-22", 4]],
    ),
    ("SELECT min(timestamp), max(seq) - min(seq) FROM audit_log", [["2026-03-20T09:00:00Z", 9]]),
    (
        "SELECT avg(duration_ms)::numeric(5, 2), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM audit_log",
        [["11.10", 8.0]],
    ),
    (
        "SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY timestamp DESC) AS r FROM audit_log "
        "WHERE user_id = 'u1' ORDER BY r",
        [["a09", 1], ["a07", 2], ["a06", 3], ["a02", 4], ["a01", 5]],
    ),
    (
        "WITH per_user AS (SELECT user_id, count(*) AS n FROM audit_log GROUP BY user_id) "
        "SELECT u.name, coalesce(p.n, 0) FROM users u LEFT JOIN per_user p ON p.user_id = u.id ORDER BY u.id",
        [["Ana", 5], ["Bo", 3], ["Cy", 1], ["Di", 1]],
    ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n",
        [[55]],
    ),
    (
        "SELECT k, count(*) FROM audit_log, jsonb_object_keys(params) AS k GROUP BY k ORDER BY k",
        [["item", 8], ["rows", 2], ["table", 2], ["vote", 4]],
    ),
    ("SELECT string_agg(name, ', ' ORDER BY name) FROM users WHERE role = 'analyst'", [["Bo, Di"]]),
    ("SELECT count(*) FROM pending_codes", [[2]]),
    (
        "SELECT actor, revoked_at IS NULL AS active FROM api_tokens ORDER BY actor",
        [["ana", True], ["bo", False]],
    ),
    ("VALUES (1, 'a'), (2, 'b')", [[1, "a"], [2, "b"]]),
    (
        "SELECT 1.10::numeric, 9007199254740993::bigint, interval '90 minutes', 'nan'::float8, '{\"a\": [1]}'::jsonb",
        [["1.10", "9007199254740993", "PT1H30M", "NaN", {"a": [1]}]],
    ),
    (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'redacted' ORDER BY 1",
        [[view] for view in VIEWS],
    ),
]


@pytest.fixture(scope="module")
def pg():
    with seeded_pg_database("engine") as url:
        engine = PgSqlEngine(url, timeout=2.0)
        yield url, engine
        engine.close()


@pytest.mark.parametrize(("sql", "expected"), LEGIT, ids=[f"{i:03d}" for i in range(len(LEGIT))])
def test_analysis_queries_answer_right(pg, sql, expected):
    result = pg[1].query(sql)
    assert result["rows"] == expected
    assert result["row_count"] == len(expected) and not result["truncated"]


def test_the_legit_corpus_through_mcp(pg):
    async def run_all(client):
        return [await client.call_tool("sql_query", {"sql": sql}) for sql, _ in LEGIT]

    results = with_client(make_pg_server(pg[0]), run_all)
    assert [result_text(r) for r in results if r.is_error] == []
    assert [r.structured_content["rows"] for r in results] == [expected for _, expected in LEGIT]
    assert not any(c in result_text(r) for r in results for c in CANARIES)


def test_schema_names_the_dialect_and_lists_the_views(pg):
    async def body(client):
        return await client.call_tool("sql_schema", {}), await client.call_tool(
            "sql_schema", {"table": "users"}
        )

    every, users = with_client(make_pg_server(pg[0]), body)
    assert every.structured_content["dialect"] == "PostgreSQL 15"
    assert "Write PostgreSQL 15 SQL" in result_text(every)
    assert [t["name"] for t in every.structured_content["tables"]] == VIEWS
    columns = {c["name"]: c for c in users.structured_content["tables"][0]["columns"]}
    assert "password_hash" not in columns and columns["has_password"]["type"] == "boolean"
    assert columns["has_password"]["description"].startswith("Whether a password is set")
    with pytest.raises(NotFoundError, match="it can read: api_tokens, audit_log"):
        pg[1].schema("secrets")


def test_explain_shows_the_plan_without_running(pg):
    plan = pg[1].explain("SELECT * FROM audit_log WHERE action = 'vote'")["plan"]
    assert "Seq Scan on audit_log" in plan and "Filter" in plan
    with pytest.raises(InvalidSQLError, match="only one read-only statement"):
        pg[1].explain("SELECT 1; DELETE FROM users")


@pytest.mark.parametrize(("limit", "truncated"), [(1, True), (9, True), (10, False), (100, False)])
def test_truncated_is_exact(pg, limit, truncated):
    result = pg[1].query("SELECT id FROM audit_log ORDER BY id", limit=limit)
    assert result["truncated"] is truncated and result["row_count"] == min(limit, 10)


def test_a_hundred_million_rows_return_a_hundred_quickly(pg):
    started = time.monotonic()
    result = pg[1].query("SELECT generate_series(1, 100000000) AS n")
    assert result["rows"][-1] == [100] and result["truncated"] and "more rows exist" in result["message"]
    assert time.monotonic() - started < 4.0


def test_output_is_capped_with_a_message(pg):
    engine = PgSqlEngine(pg[0], max_output_chars=1000)
    try:
        result = engine.query("SELECT repeat('x', 300) FROM generate_series(1, 10)")
    finally:
        engine.close()
    assert (
        result["truncated"]
        and result["row_count"] == 3
        and "output capped at 1,000 characters" in result["message"]
    )


@pytest.mark.parametrize("limit", [0, 10_001, True, "5"])
def test_limit_out_of_range_is_refused(pg, limit):
    with pytest.raises(InvalidArgumentError, match="limit must be a whole number from 1 to 10,000"):
        pg[1].query("SELECT 1", limit=limit)


RUNAWAYS = [
    "SELECT count(*) FROM generate_series(1, 10000000000::bigint)",
    "WITH RECURSIVE spin(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM spin) SELECT count(*) FROM spin",
    "SELECT count(*) FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b",
    "SELECT count(*) FROM generate_series(1, 1000000000) g WHERE md5(g::text) = 'never'",
]


@pytest.mark.parametrize("sql", RUNAWAYS)
def test_runaways_stop_at_the_time_limit_and_the_engine_recovers(pg, sql):
    engine = PgSqlEngine(pg[0], timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match=r"longer than the 0\.5 s time limit"):
            engine.query(sql)
        assert time.monotonic() - started < 3.0  # slack for a loaded machine; unstopped, far longer
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]
    finally:
        engine.close()


def test_pg_sleep_past_the_gate_stops_at_the_time_limit(pg):
    engine = PgSqlEngine(pg[0], timeout=0.5, guard=False)
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            engine.query("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 3.0
    finally:
        engine.close()


def test_a_sort_over_the_temp_file_limit_fails_cleanly(pg):
    engine = PgSqlEngine(pg[0], timeout=5.0, work_mem="64kB", temp_file_limit="1MB")
    try:
        with pytest.raises(InvalidSQLError, match="more temporary disk space than the SQL tool allows"):
            engine.query(
                "SELECT a.g, b.g FROM generate_series(1, 3000) a(g), generate_series(1, 300) b(g) ORDER BY random()"
            )
        assert engine.query("SELECT 1")["rows"] == [[1]]
    finally:
        engine.close()


def test_a_database_without_the_schema_says_what_to_do(pg_url):
    engine = PgSqlEngine(pg_url)
    try:
        with pytest.raises(DatabaseUnavailableError, match="has no mcp-state schema") as caught:
            engine.query("SELECT 1")
        assert "mcp:mcp" not in str(caught.value) and "\n" not in str(caught.value)
    finally:
        engine.close()


def test_open_engine_takes_a_postgresql_url(pg):
    with open_engine(pg[0]) as engine:
        assert engine.schema("users")["dialect"] == "PostgreSQL 15"
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]


def test_the_client_cancels_a_statement_at_its_deadline(pg):
    """Behind statement_timeout: whatever keeps a statement running, the client cancels it."""
    deadlines = Deadlines()
    with psycopg.connect(pg[0], autocommit=True) as conn:
        started = time.monotonic()
        deadlines.arm(conn, 0.3)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")
        assert time.monotonic() - started < 2.0
        deadlines.arm(conn, 5.0)
        deadlines.disarm(conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    before = threading.active_count()
    deadlines.stop()
    assert threading.active_count() == before - 1


def test_the_real_server_on_postgresql_runs_the_sql_tools_there(pg):
    server = build_server(ServerSettings(db_path=pg[0]))

    async def body(client):
        return [
            await client.call_tool("sql_schema", {"table": "users"}),
            await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM audit_log"}),
            await client.call_tool("sql_query", {"sql": "SELECT password_hash FROM public.users"}),
            await client.call_tool("sql_explain", {"sql": "SELECT * FROM users"}),
        ]

    schema, count, secret, plan = with_client(server, body)
    assert schema.structured_content["dialect"] == "PostgreSQL 15"
    assert count.structured_content["rows"] == [[10]]
    assert secret.is_error and "write users (or redacted.users)" in result_text(secret)
    assert "Seq Scan on users" in plan.structured_content["plan"]
    assert not any(c in result_text(r) for r in (schema, count, secret, plan) for c in CANARIES)


def test_values_postgresql_refuses_come_back_as_its_reason(pg):
    with pytest.raises(InvalidSQLError, match="null character not permitted"):
        pg[1].query("SELECT chr(0)")
    with pytest.raises(InvalidSQLError, match="division by zero"):
        pg[1].query("SELECT 1 / 0")


def test_a_view_a_later_migration_adds_is_readable_at_once(pg):
    with psycopg.connect(pg[0], autocommit=True) as conn:  # as the login role, as a migration would
        conn.execute("CREATE VIEW redacted.later AS SELECT 1 AS x")
    try:
        assert pg[1].query("SELECT x FROM later")["rows"] == [[1]]
    finally:
        with psycopg.connect(pg[0], autocommit=True) as conn:
            conn.execute("DROP VIEW redacted.later")


def test_calls_beyond_the_pool_wait_then_say_the_tool_is_busy(pg):
    engine = PgSqlEngine(pg[0], timeout=0.5, pool_size=1, guard=False)
    try:
        engine.query("SELECT 1")
        busy = pytest.raises(DatabaseUnavailableError, match="the SQL tool is busy: 1 queries are running")
        with engine._pool.connection(), busy:  # the one connection is taken
            engine.query("SELECT 1")
        assert engine.query("SELECT 2")["rows"] == [[2]]
        engine.close()  # a later call opens a new pool
        assert engine.query("SELECT 3")["rows"] == [[3]]
    finally:
        engine.close()


def test_a_huge_result_never_leaves_the_database_server(pg):
    """30 values of 20 MB: PostgreSQL sends NULLs past the result budget, so the server process
    neither waits for 600 MB nor holds them."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = pg[1].query("SELECT repeat('x', 20000000) AS big FROM generate_series(1, 30)")
    assert time.monotonic() - started < 5.0
    assert (result["row_count"], result["truncated"]) == (0, True)
    assert "output capped at 50,000 characters after 0 rows" in result["message"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # KiB


@pytest.mark.parametrize(
    ("sql", "columns", "rows"),
    [
        ("SELECT 1 AS a, 2 AS a", ["a", "a"], [[1, 2]]),
        ("SELECT FROM users WHERE id = 'u1'", [], [[]]),
        ("SELECT id FROM users ORDER BY id DESC LIMIT 2;  ", ["id"], [["u4"], ["u3"]]),
        ("SELECT 'é' || name AS n FROM users WHERE id = 'u1' -- a trailing comment", ["n"], [["éAna"]]),
    ],
)
def test_statements_keep_their_names_order_and_shape(pg, sql, columns, rows):
    result = pg[1].query(sql)
    assert [c["name"] for c in result["columns"]] == columns and result["rows"] == rows


def test_an_unreachable_server_is_named_in_one_line_without_the_password(capfd):
    """Nothing listens on port 1: the answer names the server and the way forward, not a busy
    pool, and the pool's own connection warnings stay out of the output."""
    engine = PgSqlEngine("postgresql://bob:s3cret-pw@127.0.0.1:1/nope", timeout=2)
    try:
        with pytest.raises(DatabaseUnavailableError) as caught:
            engine.query("SELECT 1")
    finally:
        engine.close()
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL database postgresql://bob@127.0.0.1:1/nope")
    assert "s3cret-pw" not in message and "\n" not in message
    assert "error connecting" not in capfd.readouterr().err
