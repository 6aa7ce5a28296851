"""Read-only SQL on PostgreSQL: what the SQL tool's layers cost, next to DuckDB's SQL tool.

The same N audit rows (default 200,000) in a hardened DuckDB file and in a fresh PostgreSQL
database (its ``audit_log`` table and ``redacted.audit_log`` view). Each query runs three
ways, alternating: directly on a psycopg connection of the login role (``execute`` and
``fetchall``, no transaction settings, no role, no gate), through ``PgSqlEngine.query``
(the gate, ``BEGIN READ ONLY`` with the limits and ``SET LOCAL ROLE``, ``DECLARE``/``FETCH``,
``ROLLBACK``, JSON-safe rows), and through DuckDB's ``SqlEngine.query``. Prints min, median and
max milliseconds per call and the engine's median over the direct query's.

    MCP_STATE_TEST_POSTGRES=postgresql://USER:PASSWORD@127.0.0.1:5432/postgres \\
        python tests/benchmarks/bench_sql_pg.py [--rows 200000] [--repetitions 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_sql import seed as seed_duckdb
from common import alternate
from pg_support import with_database

from mcp_state.sql import SqlEngine
from mcp_state.sql.pg_engine import PgSqlEngine
from mcp_state.sql.pg_role import reader_name

# name: (PostgreSQL, DuckDB)
QUERIES: dict[str, tuple[str, str]] = {
    "SELECT 1": ("SELECT 1", "SELECT 1"),
    "GROUP BY action": (
        "SELECT action, count(*) AS n, avg(duration_ms) AS avg_ms FROM audit_log GROUP BY action ORDER BY n DESC",
        "SELECT action, count(*) AS n, avg(duration_ms) AS avg_ms FROM audit_log GROUP BY ALL ORDER BY n DESC",
    ),
    "count of one user's votes": (
        "SELECT count(*) AS n FROM audit_log WHERE user_id = 'u7' AND action = 'vote'",
        "SELECT count(*) AS n FROM audit_log WHERE user_id = 'u7' AND action = 'vote'",
    ),
    "100 newest rows": (
        "SELECT id, timestamp, action, params FROM audit_log ORDER BY seq DESC LIMIT 100",
        "SELECT id, timestamp, action, params FROM audit_log ORDER BY seq DESC LIMIT 100",
    ),
}

_SCHEMA = """
CREATE TABLE audit_log (id text PRIMARY KEY, timestamp timestamp NOT NULL, user_id text, action text NOT NULL,
    resource text, params jsonb, result text, duration_ms integer, seq bigserial);
INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
SELECT 'a' || i, timestamp '2026-01-01' + (i % 100) * interval '1 day' + (i % 86400) * interval '1 second',
       'u' || (i % 50),
       (ARRAY['approve_knowledge', 'vote', 'record_sync', 'get_sync_state', 'link_chat', 'create_user',
              'update_user', 'run_script', 'register_table', 'set_permission'])[i % 10 + 1],
       'r' || (i % 1000), jsonb_build_object('n', i), CASE WHEN i % 17 = 0 THEN 'error' ELSE 'ok' END, i % 500
FROM generate_series(0, %s - 1) AS i;
CREATE INDEX ON audit_log (seq);
CREATE SCHEMA redacted;
CREATE VIEW redacted.audit_log AS SELECT * FROM audit_log;
ANALYZE audit_log;
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repetitions", type=int, default=30)
    args = parser.parse_args(argv)
    admin = os.environ.get("MCP_STATE_TEST_POSTGRES")
    if not admin:
        parser.error("set MCP_STATE_TEST_POSTGRES to a PostgreSQL URL of a role that may create databases")
    name = f"mcp_bench_sql_pg_{os.getpid()}"
    url = with_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_SCHEMA.replace("%s", str(int(args.rows))))
        with tempfile.TemporaryDirectory() as tmp:
            duck_db = seed_duckdb(Path(tmp) / "state.duckdb", args.rows)
            duck, pg = SqlEngine(duck_db, timeout=30.0), PgSqlEngine(url, timeout=30.0)
            try:
                with psycopg.connect(url, autocommit=True) as direct:
                    direct.execute("SET TimeZone = 'UTC'")
                    _measure(direct, pg, duck, args.rows, args.repetitions)
            finally:
                pg.close()
                duck.close()
                duck_db.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{reader_name(name)}"')


def _measure(direct: psycopg.Connection, pg: PgSqlEngine, duck: SqlEngine, rows: int, reps: int) -> None:
    print(f"{rows:,} audit rows, {reps} repetitions; milliseconds per call: min / median / max")
    print(
        f"{'query':28} {'PostgreSQL direct':>22} {'PgSqlEngine.query':>22} {'DuckDB SqlEngine':>22} {'pg engine/direct':>17}"
    )
    for label, (pg_sql, duck_sql) in QUERIES.items():
        stats = alternate(
            {
                "direct": lambda s=pg_sql: direct.execute(s).fetchall() and None,
                "engine": lambda s=pg_sql: pg.query(s, limit=1000) and None,
                "duckdb": lambda s=duck_sql: duck.query(s, limit=1000) and None,
            },
            repetitions=reps,
            warmup=2,
        )
        cells = [
            f"{min(st.samples) * 1000:6.2f} / {st.median * 1000:6.2f} / {max(st.samples) * 1000:6.2f}"
            for st in (stats["direct"], stats["engine"], stats["duckdb"])
        ]
        ratio = stats["engine"].median / stats["direct"].median
        print(f"{label:28} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {ratio:16.2f}x")


if __name__ == "__main__":
    main()
