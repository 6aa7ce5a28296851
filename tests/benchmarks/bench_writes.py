"""Writes: ``record_sync`` through the repository vs the legacy JSON rewrite.

The legacy way to record one sync: read the whole ``sync_state.json``, change one entry,
write it back atomically (temporary file + rename). Ours: one upsert plus one history row
in a DuckDB transaction (durable: DuckDB syncs its write-ahead log on commit; the legacy
baseline is not even fsynced, so the comparison favours it).

    python tests/benchmarks/bench_writes.py [--sizes 1000,10000,100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Stats, alternate, print_table, write_report

from mcp_state.db import Database
from mcp_state.gateway import Gateway
from mcp_state.repositories.sync_state import SyncStateRepository


def seed_duckdb(path: Path, tables: int) -> Database:
    db = Database(path, idle_release=None)
    Gateway(db).execute(
        """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, hash, status)
           SELECT 't' || i, now()::TIMESTAMP, i, i * 10, md5(i::VARCHAR), 'ok' FROM range(?) r(i)""",
        [tables],
    )
    return db


def seed_json(path: Path, tables: int) -> None:
    data = {
        "tables": {
            f"t{i}": {
                "last_sync": "2026-03-27T08:00:00Z",
                "rows": i,
                "file_size_bytes": i * 10,
                "hash": f"{i:x}",
            }
            for i in range(tables)
        }
    }
    path.write_text(json.dumps(data))


def legacy_record_sync(path: Path, table_id: str, rows: int) -> None:
    """The legacy code path: read everything, change one entry, write atomically."""
    with open(path) as f:
        data = json.load(f)
    data["tables"][table_id] = {
        "last_sync": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
        "file_size_bytes": rows * 10,
        "hash": f"{rows:x}",
    }
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def per_op(fn, ops: int):
    def run() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            fn()
        return (time.perf_counter() - start) / ops

    return run


def concurrent(fn, threads: int, ops_per_thread: int) -> float:
    """Seconds per operation with ``threads`` writers running at once."""
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(ops_per_thread):
                fn()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return (time.perf_counter() - start) / (threads * ops_per_thread)


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = 3 if args.quick else 7
    figures: list[Figure] = []
    rng = random.Random(7)

    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            db = seed_duckdb(Path(tmp) / f"w{size}.duckdb", size)
            repo = SyncStateRepository(db)
            legacy = Path(tmp) / f"sync_state_{size}.json"
            seed_json(legacy, size)
            ours_ops = 50
            legacy_ops = max(2, min(50, 2_000_000 // (size * 10)))

            def ours() -> None:
                repo.update_sync(
                    f"t{rng.randrange(size)}", rows=rng.randrange(10**6), file_size_bytes=1, hash="h"
                )

            def theirs() -> None:
                legacy_record_sync(legacy, f"t{rng.randrange(size)}", rng.randrange(10**6))

            stats = alternate(
                {"ours": per_op(ours, ours_ops), "legacy": per_op(theirs, legacy_ops)}, repetitions=reps
            )
            figures.append(
                _figure(f"record_sync, {size:,} tables", stats, target=30 if size == 10_000 else None)
            )

            if size == 10_000:
                lock = threading.Lock()

                def locked_legacy() -> None:
                    with lock:  # without it concurrent writers lose updates (the legacy bug)
                        theirs()

                samples = alternate(
                    {
                        "ours": lambda: concurrent(ours, 4, 25),
                        "legacy": lambda: concurrent(locked_legacy, 4, max(1, legacy_ops // 4)),
                    },
                    repetitions=max(3, reps // 2),
                )
                figures.append(_figure("record_sync, 4 writer threads, 10,000 tables", samples, target=None))
            db.close()

    print_table(figures)
    path = write_report("writes", figures)
    print(f"\nwrote {path}")
    return figures


def _figure(name: str, stats: dict[str, Stats], *, target: float | None) -> Figure:
    return Figure(
        name=name,
        ours_label="repository",
        ours=stats["ours"].median,
        other_label="JSON rewrite",
        other=stats["legacy"].median,
        unit="s",
        target=target,
        kind="speedup",
        ours_spread=stats["ours"].spread,
        other_spread=stats["legacy"].spread,
        section="writes",
    )


if __name__ == "__main__":
    main()
