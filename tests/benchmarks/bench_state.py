"""Per-operation cost of the state layer: point read, upsert, insert.

Each operation runs through its repository on a ``Database`` backed by a file (a cursor per
operation, the process write lock, a transaction per write, UTC and JSON conversion), side
by side with the same statement on a raw DuckDB connection (autocommit, no conversion), so
the layer's own overhead shows. Tables are filled with ``--rows`` rows first; keys are
drawn at random.

    python tests/benchmarks/bench_state.py [--rows 10000] [--ops 300] [--quick]

    point read  SyncStateRepository.get_table_state     vs SELECT * ... WHERE table_id = ?
    upsert      TelegramRepository.link_user (existing) vs INSERT ... ON CONFLICT DO UPDATE
    insert      AuditRepository.log                      vs INSERT INTO audit_log ...
    record sync SyncStateRepository.update_sync          vs upsert + history INSERT in BEGIN/COMMIT
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Stats, alternate, print_table, write_report

from mcp_state.db import Database, connect
from mcp_state.gateway import Gateway, utc_now
from mcp_state.repositories import AuditRepository, SyncStateRepository, TelegramRepository

FILL = [
    """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, hash, status)
       SELECT 't' || i, now()::TIMESTAMP, i, i * 10, md5(i::VARCHAR), 'ok' FROM range(?) r(i)""",
    """INSERT INTO telegram_links (user_id, chat_id, linked_at)
       SELECT 'u' || i, i, now()::TIMESTAMP FROM range(?) r(i)""",
    """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params)
       SELECT uuid()::VARCHAR, now()::TIMESTAMP, 'u' || (i % 50), 'fill', 't' || i, '{"i": 1}'
       FROM range(?) r(i)""",
]


def fill(db: Database, rows: int) -> None:
    gateway = Gateway(db)
    for sql in FILL:
        gateway.execute(sql, [rows])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows in each table before measuring")
    parser.add_argument("--ops", type=int, default=300, help="measured operations per side")
    parser.add_argument("--quick", action="store_true", help="100 operations, 1,000 rows")
    args = parser.parse_args(argv)
    rows, ops = (1_000, 100) if args.quick else (args.rows, args.ops)
    rng = random.Random(7)
    figures: list[Figure] = []

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "ours.duckdb", idle_release=None)
        fill(db, rows)
        raw = connect(Path(tmp) / "raw.duckdb")  # same schema, plain connection, autocommit
        for sql in FILL:
            raw.execute(sql, [rows])

        sync, links, audit = SyncStateRepository(db), TelegramRepository(db), AuditRepository(db)

        def key(prefix):
            return f"{prefix}{rng.randrange(rows)}"

        sides = {
            "point read": (
                lambda: sync.get_table_state(key("t")),
                lambda: raw.execute("SELECT * FROM sync_state WHERE table_id = ?", [key("t")]).fetchone(),
            ),
            "upsert": (
                lambda: links.link_user(key("u"), chat_id=rng.randrange(10**9)),
                lambda: raw.execute(
                    """INSERT INTO telegram_links (user_id, chat_id, linked_at) VALUES (?, ?, ?)
                       ON CONFLICT (user_id) DO UPDATE
                       SET chat_id = excluded.chat_id, linked_at = excluded.linked_at""",
                    [key("u"), rng.randrange(10**9), utc_now().replace(tzinfo=None)],
                ),
            ),
            "insert": (
                lambda: audit.log(user_id="u1", action="bench", resource=key("t"), params={"n": 1}),
                lambda: raw.execute(
                    """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params)
                       VALUES (?, ?, ?, ?, ?, ?)""",
                    [
                        str(uuid.uuid4()),
                        utc_now().replace(tzinfo=None),
                        "u1",
                        "bench",
                        key("t"),
                        json.dumps({"n": 1}),
                    ],
                ),
            ),
            "record sync": (
                lambda: sync.update_sync(key("t"), rows=1, file_size_bytes=1, hash="h"),
                lambda: _raw_record_sync(raw, key("t")),
            ),
        }
        summary = {}
        for name, (ours, baseline) in sides.items():
            runs = (
                {"ours": _timed(ours)}
                if baseline is None
                else {"ours": _timed(ours), "raw": _timed(baseline)}
            )
            stats = alternate(runs, repetitions=ops, warmup=10)
            summary[name] = {side: _describe(s) for side, s in stats.items()}
            figures.append(
                Figure(
                    name=f"{name}, {rows:,} rows",
                    ours_label="repository on Database",
                    ours=stats["ours"].median,
                    other_label="raw DuckDB",
                    other=stats["raw"].median if "raw" in stats else stats["ours"].median,
                    unit="s",
                    target=None,
                    ours_spread=stats["ours"].spread,
                    other_spread=stats["raw"].spread if "raw" in stats else 0.0,
                    extra={
                        "ours_p95": stats["ours"].p95,
                        **({"raw_p95": stats["raw"].p95} if "raw" in stats else {}),
                    },
                )
            )
        raw.close()
        db.close()

    print_table(figures)
    print()
    for name, sides_summary in summary.items():
        print(f"{name:12} " + "   ".join(f"{side}: {desc}" for side, desc in sides_summary.items()))
    path = write_report("state_ops", figures, notes={"rows": rows, "ops": ops})
    print(f"\nwrote {path}")
    return figures


def _raw_record_sync(raw, table_id: str) -> None:  # type: ignore[no-untyped-def]
    now = utc_now().replace(tzinfo=None)
    raw.execute("BEGIN TRANSACTION")
    raw.execute(
        """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, hash, status)
           VALUES (?, ?, 1, 1, 'h', 'ok')
           ON CONFLICT (table_id) DO UPDATE SET last_sync = excluded.last_sync, rows = excluded.rows,
               file_size_bytes = excluded.file_size_bytes, hash = excluded.hash, status = excluded.status""",
        [table_id, now],
    )
    raw.execute(
        "INSERT INTO sync_history (id, table_id, synced_at, rows, status) VALUES (?, ?, ?, 1, 'ok')",
        [str(uuid.uuid4()), table_id, now],
    )
    raw.execute("COMMIT")


def _timed(op):  # type: ignore[no-untyped-def]
    """One call of ``op`` whose result is dropped (``alternate`` reads a returned float as seconds)."""

    def run() -> None:
        op()

    return run


def _describe(stats: Stats) -> str:
    ops_per_s = 1 / stats.median if stats.median else float("inf")
    return f"median {stats.median * 1e6:.0f} µs, p95 {stats.p95 * 1e6:.0f} µs (~{ops_per_s:,.0f}/s)"


if __name__ == "__main__":
    main()
