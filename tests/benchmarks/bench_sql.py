"""Read-only SQL: ``sql_query`` against the same query run directly on DuckDB.

One hardened database with N audit rows (default 1,000,000). Each figure runs one query
three ways, alternating: directly on a DuckDB cursor of the same instance (``execute`` and
``fetchall``), through ``SqlEngine.query`` (every guard layer, the read-only transaction, the
watchdog, the JSON-safe rows), and as the ``sql_query`` tool over an in-memory MCP session.
Target: ``sql_query`` at most 1.3x the direct query for a GROUP BY over 1M rows; the fixed
cost of the layers (``SELECT 1``) is reported in milliseconds, with its parts.

    python tests/benchmarks/bench_sql.py [--rows 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Stats, print_table, write_report  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

from mcp_state.gateway import Gateway  # noqa: E402
from mcp_state.sql import SqlEngine, hardened_database  # noqa: E402
from mcp_state.sql.guard import check_statement, check_tree  # noqa: E402
from mcp_state.server.tools_sql import register_sql_tools  # noqa: E402

QUERIES = {
    "GROUP BY action over {rows} audit rows": (
        "SELECT action, count(*) AS n, avg(duration_ms) AS avg_ms FROM audit_log GROUP BY ALL ORDER BY n DESC"
    ),
    "actions per user per day over {rows} audit rows (100 of 5,000 groups)": (
        "SELECT user_id, timestamp::DATE AS day, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY ALL LIMIT 100"
    ),
    "fixed cost: SELECT 1": "SELECT 1",
}


def seed(path: Path, rows: int):
    db = hardened_database(path, idle_release=None)
    Gateway(db).execute(
        """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
           SELECT 'a' || i,
                  TIMESTAMP '2026-01-01' + INTERVAL (i % 100) DAY + INTERVAL (i % 86400) SECOND,
                  'u' || (i % 50),
                  ['approve_knowledge', 'vote', 'record_sync', 'get_sync_state', 'link_chat',
                   'create_user', 'update_user', 'run_script', 'register_table', 'set_permission'][i % 10 + 1],
                  'r' || (i % 1000),
                  '{"n": ' || i || '}',
                  CASE WHEN i % 17 = 0 THEN 'error' ELSE 'ok' END,
                  (i % 500)::INTEGER
           FROM range(?) r(i)""",
        [rows],
    )
    return db


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    reps = 7 if args.quick else 30
    notes: dict[str, object] = {"rows": args.rows, "repetitions": reps}

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        db = seed(Path(tmp) / "state" / "system.duckdb", args.rows)
        notes["seed_seconds"] = round(time.perf_counter() - started, 2)
        engine = SqlEngine(db)
        figures = anyio.run(_measure, db, engine, args.rows, reps)
        notes["guard_parts_ms"] = _guard_parts(db, engine, reps * 20)
        db.close()

    print_table(figures)
    for fig in figures:
        print(f"  {fig.name}: +{fig.extra['added_ms']:.2f} ms over direct")
    print(f"  guard parts (median ms per query): {notes['guard_parts_ms']}")
    path = write_report("sql", figures, notes)
    print(f"\nwrote {path}")
    return figures


async def _measure(db, engine: SqlEngine, rows: int, reps: int) -> list[Figure]:
    """Time the three sides in the event loop that also runs the MCP session (no thread hop
    of the benchmark's own), alternating their order round by round."""
    mcp = MCPServer("bench-sql")
    register_sql_tools(mcp, lambda ctx: engine)
    figures: list[Figure] = []
    async with Client(mcp) as client:
        for name, sql in QUERIES.items():

            async def direct(sql: str = sql) -> None:
                with db.session() as cursor:
                    cursor.execute(sql).fetchall()

            async def through_engine(sql: str = sql) -> None:
                engine.query(sql)

            async def through_mcp(sql: str = sql) -> None:
                result = await client.call_tool("sql_query", {"sql": sql})
                assert not result.is_error, result.content

            sides = {"direct": direct, "engine": through_engine, "mcp": through_mcp}
            samples: dict[str, list[float]] = {side: [] for side in sides}
            for round_no in range(reps + 2):
                order = list(sides.items())
                if round_no % 2:
                    order.reverse()
                for side, run in order:
                    start = time.perf_counter()
                    await run()
                    if round_no >= 2:
                        samples[side].append(time.perf_counter() - start)
            stats = {side: Stats(values) for side, values in samples.items()}
            label = name.format(rows=f"{rows:,}")
            fixed = sql == "SELECT 1"
            for side, side_label in (("engine", "SqlEngine.query"), ("mcp", "sql_query over MCP")):
                figures.append(
                    Figure(
                        name=f"{label}: {side_label}",
                        ours_label=side_label,
                        ours=stats[side].median,
                        other_label="DuckDB direct",
                        other=stats["direct"].median,
                        unit="s",
                        target=None if fixed else 1.3,
                        ours_spread=stats[side].spread,
                        other_spread=stats["direct"].spread,
                        extra={"added_ms": (stats[side].median - stats["direct"].median) * 1000},
                    )
                )
    return figures


def _guard_parts(db, engine: SqlEngine, n: int) -> dict[str, float]:
    """Median milliseconds of each layer's work for a typical analytical statement."""
    sql = QUERIES["GROUP BY action over {rows} audit rows"]
    parts: dict[str, list[float]] = {"parse (extract_statements)": [], "json_serialize_sql": [], "tree walk": []}
    with engine._session() as cursor:  # noqa: SLF001 - the benchmark times the engine's own steps
        catalog = engine._load_catalog(cursor)  # noqa: SLF001
        for _ in range(n):
            t0 = time.perf_counter()
            check_statement(cursor, sql)
            t1 = time.perf_counter()
            serialized = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
            t2 = time.perf_counter()
            check_tree(serialized, catalog)
            t3 = time.perf_counter()
            parts["parse (extract_statements)"].append(t1 - t0)
            parts["json_serialize_sql"].append(t2 - t1)
            parts["tree walk"].append(t3 - t2)
    session = Stats([_time(lambda: _open_session(engine)) for _ in range(n)])
    out = {name: round(Stats(v).median * 1000, 3) for name, v in parts.items()}
    out["cursor + read-only transaction + watchdog"] = round(session.median * 1000, 3)
    return out


def _open_session(engine: SqlEngine) -> None:
    with engine._session():  # noqa: SLF001
        pass


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
