"""Backups and the WAL: how long a backup of a 1M-row state takes, and how big the WAL gets.

- backup: ``mcp_state.backup.backup`` (checkpoint, copy through DuckDB's descriptor, fsync,
  verify the copy) against a plain ``shutil.copyfile`` of the same file, alternated.
- WAL under crashes: a writer process makes ``--writes`` acknowledged writes and is killed
  (SIGKILL), ``--rounds`` times; the WAL size is taken before each restart. Ours (a start that
  replays a WAL checkpoints it) against raw DuckDB (which replays and keeps appending).
- WAL under sustained writes: the largest WAL seen while one process writes without pause.
- verify: ``mcp_state.backup.verify`` of the seeded state plus ``--items`` knowledge items (with
  their word index and votes) and 1,000 synced tables of 10 runs each, against the same verify
  without the agreement checks (``mcp_state.consistency``), alternated.

    python tests/benchmarks/bench_recovery.py [--rows 1000000] [--rounds 10] [--writes 300] [--quick]
        [--parts backup,verify,wal]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from mcp_state import consistency
from mcp_state.backup import backup, verify
from mcp_state.db import Database, connect
from mcp_state.knowledge_index import WORDS_OF
from mcp_state.repositories.audit import AuditRepository

OURS = textwrap.dedent(
    """
    import os, sys
    from mcp_state.db import Database
    from mcp_state.repositories.audit import AuditRepository
    audit = AuditRepository(Database(sys.argv[1], idle_release=None))
    for i in range(int(sys.argv[2])):
        audit.log(user_id="u", action="write", params={"i": i, "pad": "x" * 200})
    os.kill(os.getpid(), 9)
    """
)
RAW = textwrap.dedent(
    """
    import os, sys, uuid, duckdb, json
    conn = duckdb.connect(sys.argv[1])
    for i in range(int(sys.argv[2])):
        conn.execute("INSERT INTO audit_log (id, user_id, action, params) VALUES (?, 'u', 'write', ?)",
                     [str(uuid.uuid4()), json.dumps({"i": i, "pad": "x" * 200})])
    os.kill(os.getpid(), 9)
    """
)


def seed(path: Path, rows: int) -> None:
    conn = connect(path)
    conn.execute(
        """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
           SELECT 'a' || i, now()::TIMESTAMP - INTERVAL (i) SECOND, 'user' || (i % 100), 'update_user',
                  'users/' || (i % 1000), json_object('i', i, 'note', repeat('x', 40)), 'ok', i % 50
           FROM range(?) r(i)""",
        [rows],
    )
    conn.close()


def summary(values: list[float], unit: str, scale: float = 1.0) -> str:
    return (
        f"min {min(values) * scale:.2f} / median {statistics.median(values) * scale:.2f} / "
        f"max {max(values) * scale:.2f} {unit}"
    )


def bench_backup(folder: Path, rows: int, repetitions: int) -> None:
    path = folder / "state.duckdb"
    started = time.perf_counter()
    seed(path, rows)
    print(
        f"seeded {rows} audit rows in {time.perf_counter() - started:.1f}s; file {path.stat().st_size / 1e6:.1f} MB"
    )
    ours: list[float] = []
    plain: list[float] = []
    for round_no in range(repetitions):
        sides = [("ours", ours), ("plain", plain)]
        for name, samples in sides if round_no % 2 == 0 else reversed(sides):
            target = folder / f"backup-{name}.duckdb"
            target.unlink(missing_ok=True)
            start = time.perf_counter()
            if name == "ours":
                backup(str(path), target)
            else:
                shutil.copyfile(path, target)
            samples.append(time.perf_counter() - start)
    print(f"backup of {rows} rows, mcp-state backup (checkpoint, copy, fsync, verify): {summary(ours, 's')}")
    print(f"backup of {rows} rows, plain file copy (no fsync, no check):          {summary(plain, 's')}")
    print(f"ratio ours/plain (medians): {statistics.median(ours) / statistics.median(plain):.1f}x")


def seed_agreeing(path: Path, items: int) -> None:
    """Knowledge items with their word index and votes, and sync states with their history."""
    conn = connect(path)
    conn.execute(
        """INSERT INTO knowledge_items (id, title, content, category, tags)
           SELECT 'k' || i, 'Item ' || i || ' about orders', repeat('word' || (i % 500) || ' ', 40),
                  'ops', ['t' || (i % 20)]::JSON FROM range(?) r(i)""",
        [items],
    )
    conn.execute(WORDS_OF.format(where=""))
    conn.execute(
        """INSERT INTO knowledge_votes SELECT 'k' || i, 'u' || j, CASE WHEN j % 3 = 0 THEN -1 ELSE 1 END, NULL
           FROM range(?) r(i), range(3) s(j)""",
        [items],
    )
    conn.execute(
        """INSERT INTO sync_history (id, table_id, synced_at, rows, status)
           SELECT 'h' || t || '-' || r, 't' || t, now()::TIMESTAMP - INTERVAL (10 - r) MINUTE, r, 'ok'
           FROM range(1000) a(t), range(10) b(r) ORDER BY r, t"""
    )
    conn.execute(
        """INSERT INTO sync_state (table_id, last_sync, rows)
           SELECT table_id, max(synced_at), 9 FROM sync_history GROUP BY table_id"""
    )
    conn.close()


def bench_verify(folder: Path, rows: int, items: int, repetitions: int) -> None:
    path = folder / "verify.duckdb"
    seed(path, rows)
    seed_agreeing(path, items)
    checked = consistency.check
    full: list[float] = []
    bare: list[float] = []
    for round_no in range(repetitions):
        sides = [("full", full), ("bare", bare)]
        for name, samples in sides if round_no % 2 == 0 else reversed(sides):
            consistency.check = checked if name == "full" else (lambda conn, db_path: consistency.Findings())  # type: ignore[assignment]
            start = time.perf_counter()
            report = verify(str(path))
            samples.append(time.perf_counter() - start)
            assert report.problems == [], report.problems
    consistency.check = checked  # type: ignore[assignment]
    what = f"{rows} audit rows, {items} knowledge items, 10,000 sync runs"
    print(f"verify of {what}, with the agreement checks: {summary(full, 's')}")
    print(f"verify of {what}, without them:             {summary(bare, 's')}")
    print(f"ratio with/without (medians): {statistics.median(full) / statistics.median(bare):.2f}x")


def wal_sizes_across_crashes(folder: Path, script: str, rounds: int, writes: int) -> list[int]:
    path = folder / "crash.duckdb"
    connect(path).close()
    sizes = []
    for _ in range(rounds):
        subprocess.run([sys.executable, "-c", script, str(path), str(writes)], check=False)
        wal = Path(f"{path}.wal")
        sizes.append(wal.stat().st_size if wal.exists() else 0)
    return sizes


def largest_wal_under_writes(folder: Path, writes: int) -> int:
    path = folder / "steady.duckdb"
    db = Database(path, idle_release=None)
    audit = AuditRepository(db)
    wal = Path(f"{path}.wal")
    largest = 0
    for i in range(writes):
        audit.log(user_id="u", action="write", params={"i": i, "pad": "x" * 2000})
        if i % 50 == 0 and wal.exists():
            largest = max(largest, wal.stat().st_size)
    db.close()
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--steady", type=int, default=4000, help="writes in the sustained-write run")
    parser.add_argument("--items", type=int, default=20_000, help="knowledge items for the verify run")
    parser.add_argument("--parts", default="backup,verify,wal", help="which measurements, comma-separated")
    parser.add_argument("--quick", action="store_true", help="100k rows, 4 rounds, 1000 sustained writes")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.steady, args.items = 100_000, 4, 1000, 2000
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as scratch:
        folder = Path(scratch)
        if "backup" in parts:
            bench_backup(folder, args.rows, args.repetitions)
        if "verify" in parts:
            bench_verify(folder, args.rows, args.items, args.repetitions)
        if "wal" not in parts:
            return
        for name, script in (("mcp-state", OURS), ("raw DuckDB", RAW)):
            run = folder / name.replace(" ", "-")
            run.mkdir()
            sizes = wal_sizes_across_crashes(run, script, args.rounds, args.writes)
            print(
                f"WAL after each of {args.rounds} crashes ({args.writes} writes each), {name}: "
                + ", ".join(f"{size / 1e6:.2f}" for size in sizes)
                + " MB"
            )
        largest = largest_wal_under_writes(folder, args.steady)
        print(f"largest WAL during {args.steady} sustained writes of ~2 KB: {largest / 1e6:.2f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
