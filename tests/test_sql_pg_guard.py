"""The PostgreSQL gate of the read-only SQL tool (``mcp_state.sql.pg_guard``): pglast only, no server."""

from __future__ import annotations

import pytest

from mcp_state.errors import InvalidSQLError
from mcp_state.sql.pg_guard import check_pg_statement

VIEWS = frozenset({"users", "audit_log", "sync_state", "knowledge_items"})

ACCEPTED = [
    "SELECT * FROM users",
    "SELECT u.id, count(a.*) FROM redacted.users u LEFT JOIN audit_log a ON a.user_id = u.id GROUP BY u.id",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) FROM n",
    "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b, (SELECT * FROM a) s",
    "SELECT extract(year FROM now()), now() AT TIME ZONE 'UTC', trim(both 'x' FROM 'xax'), '1'::int, "
    "interval '1 day', '{1,2}'::int[], substring('abc' FROM 2), position('b' IN 'abc'), "
    "coalesce(NULL, 1), greatest(1, 2), nullif(1, 1)",
    "SELECT action, count(*) FILTER (WHERE result = 'ok'), row_number() OVER (PARTITION BY user_id ORDER BY seq) "
    "FROM audit_log GROUP BY action, user_id, seq",
    "SELECT params->>'table', k, v FROM audit_log, LATERAL jsonb_each_text(params) AS e(k, v)",
    "SELECT generate_series(1, 100000000)",
    "SELECT * FROM generate_series(1, 3) g CROSS JOIN unnest(ARRAY['a', 'b']) WITH ORDINALITY u(x, i)",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT 1 UNION SELECT 2 EXCEPT SELECT 3",
    "SELECT table_name, column_name FROM information_schema.columns",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM audit_log",
    "SELECT date_trunc('day', timestamp), pg_catalog.upper(action) FROM audit_log TABLESAMPLE BERNOULLI (50)",
    "SELECT x FROM users WHERE EXISTS (SELECT 1 FROM audit_log) AND id IN (SELECT user_id FROM audit_log)",
    "SELECT 'a' COLLATE \"C\" < 'b', current_user, CASE WHEN true THEN 1 END, ROW(1, 2), ARRAY(SELECT 1)",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_analysis_queries_pass(sql: str) -> None:
    assert check_pg_statement(sql, VIEWS) == sql


REFUSED = [
    ("SELECT * FROM public.users", "redacted views, which leave out secret columns; write users"),
    ("SELECT password_hash FROM public.users", "write users"),
    ('SELECT * FROM "public"."users"', "write users"),
    ("SELECT * FROM mcp.redacted.users", "without a database"),
    ("SELECT 1; SELECT 2", "found 2"),
    ("SELECT 1; SET ROLE postgres", "found 2"),
    ("SET ROLE postgres", "a SET or RESET"),
    ("RESET ROLE", "a SET or RESET"),
    ("SET SESSION AUTHORIZATION postgres", "a SET or RESET"),
    ("COPY users TO PROGRAM 'id'", "a COPY"),
    ("COPY (SELECT 1) TO '/tmp/x'", "a COPY"),
    ("DELETE FROM users", "a DELETE"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "a CREATE FUNCTION"),
    ("DO $$ BEGIN PERFORM 1; END $$", "a DO block"),
    ("BEGIN", "a transaction statement"),
    ("EXPLAIN ANALYZE SELECT 1", "call sql_explain"),
    ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "a DELETE in a WITH clause"),
    ("WITH d AS (UPDATE users SET email = '' RETURNING *) SELECT 1", "an UPDATE in a WITH clause"),
    ("SELECT * FROM users FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM users FOR SHARE", "FOR UPDATE/FOR SHARE"),
    ("SELECT * INTO copy_of_users FROM users", "SELECT ... INTO"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not available"),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "function pg_read_file is not available"),
    ("SELECT pg_ls_dir('.')", "function pg_ls_dir"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import"),
    ("SELECT lo_get(1)", "function lo_get"),
    ("SELECT set_config('role', 'postgres', true)", "function set_config is not available: settings"),
    ("SELECT current_setting('data_directory')", "function current_setting"),
    ("SELECT pg_sleep(60)", "does not wait"),
    ("SELECT dblink('host=x', 'SELECT 1')", "function dblink"),
    ("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", "column definition lists"),
    ("SELECT query_to_xml('SELECT * FROM public.users', true, true, '')", "runs SQL text"),
    ("SELECT nextval('audit_log_seq')", "changes a sequence"),
    ("SELECT * FROM pg_stat_activity", "table pg_stat_activity is not available"),
    ("SELECT * FROM pg_catalog.pg_authid", "table pg_catalog.pg_authid is not available"),
    ("SELECT * FROM pg_shadow", "table pg_shadow"),
    ("SELECT public.peek()", "function public.peek is not available"),
    ("SELECT peek()", "function peek is not available"),
    ("SELECT * FROM public.peek()", "function public.peek"),
    ("SELECT '1'::public.evil", "cast to public.evil"),
    ("SELECT 'users'::regclass", "cast to regclass"),
    ("SELECT 1 OPERATOR(public.+) 1", "operator public.+"),
    ("SELECT $1", "no parameters"),
    ("SELECT xmlelement(name a)", "XML"),
    ("SELECT * FROM users TABLESAMPLE evil (1)", "TABLESAMPLE evil"),
    ("SELECT has_table_privilege('users', 'SELECT')", "privileges"),
    ("SELEC 1", "does not parse as PostgreSQL"),
    ("", "no SQL statement"),
    ("SELECT 1\x00; DELETE FROM users", "NUL character"),
    ("SELECT '\ud800'", "not valid Unicode"),
    ("SELECT 1 -- " + "x" * 20_001, "over the 20,000-character limit"),
]


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_refusals_say_why(sql: str, reason: str) -> None:
    with pytest.raises(InvalidSQLError) as refused:
        check_pg_statement(sql, VIEWS)
    assert reason in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    "sql",
    [
        # A CTE is a CTE only where PostgreSQL binds it: in its query, later CTEs and (RECURSIVE) itself.
        "WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT 1) z, y",
        "SELECT (WITH u AS (SELECT 1) SELECT 1), * FROM u",
        "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
        "WITH pg_authid AS (SELECT 1) SELECT * FROM pg_catalog.pg_authid",
        "WITH x AS (SELECT 1) SELECT * FROM redacted.x",
    ],
)
def test_cte_names_are_scoped(sql: str) -> None:
    with pytest.raises(InvalidSQLError, match="is not available"):
        check_pg_statement(sql, VIEWS)


def test_a_cte_may_shadow_a_table_name_and_recursive_ctes_see_each_other() -> None:
    check_pg_statement("WITH pg_authid AS (SELECT 1) SELECT * FROM pg_authid", VIEWS)
    check_pg_statement("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", VIEWS)


def test_duckdb_only_syntax_is_refused_with_the_dialect_named():
    with pytest.raises(InvalidSQLError) as caught:
        check_pg_statement(
            "SELECT status, count(*) FROM sync_history GROUP BY ALL", frozenset({"sync_history"})
        )
    message = str(caught.value)
    assert message.startswith("the SQL does not parse as PostgreSQL: syntax error")
    assert "takes PostgreSQL 15 SQL, not DuckDB's (no GROUP BY ALL" in message
