"""Analytics: ``sql_query`` against the same query on DuckDB directly and on SQLite.

One hardened database with N audit rows (default 1,000,000), and the same rows in a SQLite
file (Python's ``sqlite3``, timestamps as ISO text, the same index on ``timestamp``). Each
query runs four ways, alternating: directly on a DuckDB cursor of the same instance
(``execute`` and ``fetchall``), through ``SqlEngine.query`` (every guard layer, the read-only
transaction, the watchdog, the JSON-safe rows), as the ``sql_query`` tool of the real server
(``build_server``, sql toolset) over an in-memory MCP session, and on SQLite. Targets:
``sql_query`` at most 1.3x the direct query and at least 20x faster than SQLite, for a GROUP
BY and for filtered counts over 1M rows; the fixed cost of the layers (``SELECT 1``) is
reported in milliseconds, with its parts.

    python tests/benchmarks/bench_sql.py [--rows 1000000] [--repetitions 30] [--quick]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Stats, alternate_async, print_table, write_report
from mcp import Client

from mcp_state.gateway import Gateway
from mcp_state.server import ServerSettings, build_server
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.engine import DEFAULT_MEMORY_LIMIT, WORKER_THREADS
from mcp_state.sql.guard import Catalog, check_statement, check_tree
from mcp_state.sql.runner import Runner
from mcp_state.sql.runner import connect as connect_worker_instance

# name: (DuckDB SQL, the same query for SQLite or None)
QUERIES: dict[str, tuple[str, str | None]] = {
    "GROUP BY action": (
        "SELECT action, count(*) AS n, avg(duration_ms) AS avg_ms FROM audit_log GROUP BY ALL ORDER BY n DESC",
        "SELECT action, count(*) AS n, avg(duration_ms) AS avg_ms FROM audit_log GROUP BY action ORDER BY n DESC",
    ),
    "count of February's errors": (
        (
            "SELECT count(*) AS n FROM audit_log WHERE result = 'error' "
            "AND timestamp >= TIMESTAMP '2026-02-01' AND timestamp < TIMESTAMP '2026-03-01'"
        ),
        (
            "SELECT count(*) AS n FROM audit_log WHERE result = 'error' "
            "AND timestamp >= '2026-02-01' AND timestamp < '2026-03-01'"
        ),
    ),
    "count of one user's votes": (
        "SELECT count(*) AS n FROM audit_log WHERE user_id = 'u7' AND action = 'vote'",
        "SELECT count(*) AS n FROM audit_log WHERE user_id = 'u7' AND action = 'vote'",
    ),
    "actions per user per day, first 100": (
        "SELECT user_id, timestamp::DATE AS day, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY ALL LIMIT 100",
        (
            "SELECT user_id, substr(timestamp, 1, 10) AS day, count(*) AS n FROM audit_log "
            "GROUP BY user_id, day ORDER BY user_id, day, n LIMIT 100"
        ),
    ),
    "fixed cost: SELECT 1": ("SELECT 1", None),
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


def seed_sqlite(db, path: Path) -> sqlite3.Connection:
    """The same audit rows in a SQLite file, as a SQLite application would keep them."""
    lite = sqlite3.connect(path, check_same_thread=False)
    lite.execute(
        """CREATE TABLE audit_log (id TEXT PRIMARY KEY, timestamp TEXT NOT NULL, user_id TEXT, action TEXT NOT NULL,
                                   resource TEXT, params TEXT, result TEXT, duration_ms INTEGER, seq INTEGER)"""
    )
    with db.session() as cursor:
        cursor.execute(
            """SELECT id, strftime(timestamp, '%Y-%m-%dT%H:%M:%S'), user_id, action, resource, params::VARCHAR,
                      result, duration_ms, seq FROM audit_log"""
        )
        while batch := cursor.fetchmany(100_000):
            lite.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
    lite.execute("CREATE INDEX audit_log_time_idx ON audit_log (timestamp)")
    lite.commit()
    lite.execute("ANALYZE")
    return lite


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="7 repetitions")
    args = parser.parse_args(argv)
    reps = 7 if args.quick else args.repetitions
    notes: dict[str, object] = {"rows": args.rows, "repetitions": reps}

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        db = seed(Path(tmp) / "state" / "system.duckdb", args.rows)
        notes["seed_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        lite = seed_sqlite(db, Path(tmp) / "audit.sqlite")
        notes["sqlite_seed_seconds"] = round(time.perf_counter() - started, 2)
        engine = SqlEngine(db)
        figures = anyio.run(_measure, db, engine, lite, args.rows, reps)
        notes["guard_parts_ms"] = _guard_parts(db, engine, reps * 20)
        lite.close()
        db.close()

    print_table(figures)
    for fig in figures:
        if "added_ms" in fig.extra:
            print(f"  {fig.name}: +{fig.extra['added_ms']:.2f} ms over direct")
    print(f"  guard parts (median ms per query): {notes['guard_parts_ms']}")
    path = write_report("sql", figures, notes)
    print(f"\nwrote {path}")
    return figures


async def _measure(db, engine: SqlEngine, lite: sqlite3.Connection, rows: int, reps: int) -> list[Figure]:
    """Time the sides in the event loop that also runs the MCP session (no thread hop of the
    benchmark's own), alternating their order round by round."""
    # The real server (its sql toolset), on the same file: DuckDB shares the open instance.
    mcp = build_server(ServerSettings(db_path=db.path, toolsets=("sql",), actor="bench", idle_release=None))
    figures: list[Figure] = []
    async with Client(mcp) as client:
        for name, (sql, sqlite_sql) in QUERIES.items():

            async def direct(sql: str = sql) -> None:
                # An operation that writes nothing, as the gateway's reads are (before the write
                # marks every session counted as a possible write: the same operation there).
                with db.session(tracked=True) as cursor:
                    cursor.execute(sql).fetchall()

            async def through_engine(sql: str = sql) -> None:
                engine.query(sql)

            async def through_mcp(sql: str = sql) -> None:
                result = await client.call_tool("sql_query", {"sql": sql})
                assert not result.is_error, result.content

            async def on_sqlite(sql: str | None = sqlite_sql) -> None:
                lite.execute(sql).fetchall()

            sides = {"direct": direct, "engine": through_engine, "mcp": through_mcp}
            if sqlite_sql is not None:
                _same_answer(db, lite, sql, sqlite_sql)
                sides["sqlite"] = on_sqlite
            stats = await alternate_async(sides, repetitions=reps, warmup=2)
            label = f"{name}, {_short(rows)} rows" if sqlite_sql else name
            fixed = sqlite_sql is None
            for side, side_label, target in (("mcp", "sql_query", 1.3), ("engine", "SqlEngine.query", None)):
                figures.append(
                    Figure(
                        name=f"{label}: {side_label} vs DuckDB",
                        ours_label=side_label,
                        ours=stats[side].median,
                        other_label="DuckDB direct",
                        other=stats["direct"].median,
                        unit="s",
                        target=None if fixed else target,
                        ours_spread=stats[side].spread,
                        other_spread=stats["direct"].spread,
                        extra={"added_ms": (stats[side].median - stats["direct"].median) * 1000},
                        section="analytics",
                    )
                )
            if "sqlite" in stats:
                figures.append(
                    Figure(
                        name=f"{label}: sql_query vs SQLite",
                        ours_label="sql_query",
                        ours=stats["mcp"].median,
                        other_label="SQLite",
                        other=stats["sqlite"].median,
                        unit="s",
                        target=20,
                        kind="speedup",
                        ours_spread=stats["mcp"].spread,
                        other_spread=stats["sqlite"].spread,
                        section="analytics",
                    )
                )
    return figures


def _short(n: int) -> str:
    """1000000 -> 1M, 200000 -> 200k."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _same_answer(db, lite: sqlite3.Connection, sql: str, sqlite_sql: str) -> None:
    """Both engines must answer the same (a benchmark of different answers measures nothing);
    rows compared as a set, since ties may come in either order."""

    def norm(rows):  # type: ignore[no-untyped-def]
        return sorted(tuple(round(v, 6) if isinstance(v, float) else str(v) for v in row) for row in rows)

    with db.session() as cursor:
        ours = norm(cursor.execute(sql).fetchall())
    theirs = norm(lite.execute(sqlite_sql).fetchall())
    assert ours == theirs, (sql, ours[:3], theirs[:3])


def _guard_parts(db, engine: SqlEngine, n: int) -> dict[str, float]:
    """Median milliseconds of each layer's work for a typical analytical statement."""
    sql = QUERIES["GROUP BY action"][0]
    parts: dict[str, list[float]] = {
        "parse (extract_statements)": [],
        "json_serialize_sql": [],
        "tree walk": [],
    }
    # The gate runs in the worker on its in-memory copy; here on an instance set up the same way.
    cursor = connect_worker_instance(DEFAULT_MEMORY_LIMIT, WORKER_THREADS)
    runner = Runner(cursor, engine.timeout)
    for request in engine.snapshot.changes({}):
        if request["op"] == "load":
            runner.load(request["table"], request["columns"], request["rows"], request["replace"])
    catalog = Catalog.load(cursor)
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
    cursor.close()
    engine.query("SELECT 1")  # the worker is up and holds the data
    held = next(r["state"] for r in engine.snapshot.changes({}) if r["op"] == "state")
    trip = Stats([_time(lambda: engine.query("SELECT 1")) for _ in range(n)])
    fingerprint = Stats([_time(lambda: list(engine.snapshot.changes(held))) for _ in range(n)])
    out = {name: round(Stats(v).median * 1000, 3) for name, v in parts.items()}
    out["worker round trip of SELECT 1 (fingerprints, gate, run)"] = round(trip.median * 1000, 3)
    out["fingerprints of the views, data unchanged (part of each call)"] = round(fingerprint.median * 1000, 3)
    return out


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
