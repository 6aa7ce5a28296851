"""Migration at real sizes: ``migrate_all`` vs DuckDB's own ``read_json`` of the same files.

Generates a legacy data directory in a temporary folder: an audit log of 1,000,000 lines
(half with an id, half without, some exact repeats) and about 100,000 entries of the other
kinds, spread over every file of the layout. Then, alternating, each into a fresh database
file, committed and closed:

- migrate: ``migrate_all(data_dir, db_path=...)``: read, check every entry, write to the
  state tables with their keys and indexes;
- read_json: for every file, ``CREATE TABLE ... AS SELECT * FROM read_json(file)`` (no checks,
  no keys; the issue's baseline);

and the same for the audit log alone, where DuckDB's reader is at its best, with one more
baseline: ``read_json`` inserting the same lines into the schema's ``audit_log`` (its primary
key and index, no checks), which shows what the table's keys cost by themselves.
Last, a second migration over the migrated database (every row unchanged), a dry run, and
the peak memory of a migration in a process of its own.

    python tests/benchmarks/bench_migration.py [--audit-lines 1000000] [--entries 100000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from common import Figure, alternate, print_table, write_report

from mcp_state.db import connect
from mcp_state.legacy import LAYOUT_FILES, migrate_all

START = datetime(2025, 1, 1, tzinfo=UTC)


def _iso(i: int) -> str:
    return (START + timedelta(seconds=37 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(root: Path, audit_lines: int, entries: int) -> None:
    """A legacy data directory with ``audit_lines`` audit lines and about ``entries`` other entries."""
    rng = random.Random(7)
    n = max(entries // 12, 1)  # per kind
    meta = root / "src_data" / "metadata"
    for folder in (meta, root / "notifications", root / "corporate-memory", root / "auth", root / "audit"):
        folder.mkdir(parents=True, exist_ok=True)

    def dump(path: Path, value: object) -> None:
        path.write_text(json.dumps(value))

    dump(
        meta / "sync_state.json",
        {
            "tables": {
                f"t{i}": {
                    "last_sync": _iso(i),
                    "rows": i * 10,
                    "file_size_bytes": i * 100,
                    "uncompressed_size_bytes": i * 300,
                    "columns": i % 40,
                    "hash": f"{i:08x}",
                    "status": "ok" if i % 9 else "error",
                    **({"error": "timeout"} if i % 9 == 0 else {}),
                }
                for i in range(n)
            },
            "history": [
                {
                    "table_id": f"t{i % n}",
                    "synced_at": _iso(i),
                    "rows": i,
                    "duration_ms": i % 5000,
                    "status": "ok",
                }
                for i in range(n)
            ],
        },
    )
    dump(
        meta / "table_registry.json",
        {
            "tables": {
                f"t{i}": {
                    "name": f"Table {i}",
                    "folder": f"f{i % 20}",
                    "sync_strategy": "full",
                    "primary_key": "id",
                    "description": f"table number {i}",
                    "registered_by": f"user{i % 50}@acme.com",
                    "registered_at": _iso(i),
                }
                for i in range(n)
            }
        },
    )
    dump(
        meta / "profiles.json",
        {
            f"t{i}": {
                "row_count": i,
                "columns": [{"name": "id", "type": "BIGINT", "null_pct": 0.0}],
                "profiled_at": _iso(i),
            }
            for i in range(n)
        },
    )
    dump(
        root / "notifications" / "sync_settings.json",
        {
            f"user{i}@acme.com": {
                "datasets": {
                    "sales": True,
                    "support": {"enabled": True, "table_mode": "selected", "tables": [f"t{i}"]},
                },
                "updated_at": _iso(i)[:10],
            }
            for i in range(n // 2)
        },
    )
    dump(
        root / "notifications" / "telegram_users.json",
        {f"user{i}@acme.com": {"chat_id": 100000 + i, "linked_at": _iso(i)} for i in range(n)},
    )
    dump(
        root / "notifications" / "pending_codes.json",
        {f"C{i:07d}": {"chat_id": 500000 + i, "created_at": _iso(i)} for i in range(n)},
    )
    dump(
        root / "notifications" / "scripts.json",
        {
            f"s{i}": {
                "name": f"Script {i}",
                "owner": f"user{i % 50}@acme.com",
                "schedule": "0 8 * * MON",
                "source": f"print({i})",
                "deployed_at": _iso(i),
                "last_run": _iso(i + 1),
                "last_status": "ok",
            }
            for i in range(n)
        },
    )
    dump(
        root / "corporate-memory" / "knowledge.json",
        [
            {
                "id": f"k{i}",
                "title": f"Item {i}",
                "content": "Lorem ipsum " * 5,
                "category": "metrics",
                "tags": ["a", "b"],
                "status": "approved",
                "contributors": [f"user{i % 50}@acme.com"],
                "source_user": f"user{i % 50}@acme.com",
                "audience": "all",
                "created_at": _iso(i),
                "updated_at": _iso(i + 1),
            }
            for i in range(n)
        ],
    )
    dump(
        root / "corporate-memory" / "votes.json",
        {f"k{i}": {f"user{i % 50}@acme.com": 1, f"user{(i + 1) % 50}@acme.com": -1} for i in range(n // 2)},
    )
    dump(
        root / "auth" / "users.json",
        {
            f"user{i}@acme.com": {
                "id": f"u{i}",
                "name": f"User {i}",
                "role": "analyst",
                "password_hash": f"$argon2id$fake{i}",
                "created_at": _iso(i),
            }
            for i in range(n)
        },
    )
    dump(
        root / "auth" / "dataset_permissions.json",
        {f"u{i}": {"sales": "read", "support": "write"} for i in range(n // 2)},
    )
    actions = ["login", "sync_trigger", "knowledge_create", "query", "vote"]
    with (root / "audit" / "audit.jsonl").open("w") as out:
        for i in range(audit_lines):
            entry: dict[str, object] = {}
            if i % 2 == 0:
                entry["id"] = f"a{i}"
            entry.update(
                timestamp=_iso(i // 3),
                user_id=f"user{rng.randrange(500)}@acme.com",
                action=actions[i % 5],
                resource=f"r{i % 1000}",
                params={"force": bool(i % 2), "n": i % 100} if i % 3 else None,
                result="ok",
                duration_ms=rng.randrange(5000),
            )
            out.write(json.dumps(entry) + "\n")


def baseline(data_dir: Path, db_path: Path) -> None:
    """DuckDB's own bulk load of the same files: one table per file, no checks, no keys."""
    conn = duckdb.connect(str(db_path))
    for i, name in enumerate(LAYOUT_FILES):
        if not (data_dir / name).exists():
            continue
        conn.execute(
            f"CREATE TABLE file_{i} AS SELECT * FROM read_json($path)", {"path": str(data_dir / name)}
        )
    conn.close()


def baseline_into_schema(audit_log: Path, db_path: Path) -> None:
    """DuckDB's ``read_json`` of the audit log into the schema's ``audit_log``: same keys, no checks."""
    conn = connect(db_path)
    conn.execute(
        """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
           SELECT coalesce(id, gen_random_uuid()::VARCHAR), timestamp, user_id, action, resource, params, result,
                  duration_ms
           FROM read_json($path, columns = {id: 'VARCHAR', timestamp: 'TIMESTAMPTZ', user_id: 'VARCHAR',
                action: 'VARCHAR', resource: 'VARCHAR', params: 'JSON', result: 'VARCHAR', duration_ms: 'INTEGER'})""",
        {"path": str(audit_log)},
    )
    conn.close()


def fresh(work: Path, name: str) -> Path:
    path = work / name
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)
    return path


def _timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def peak_memory_mb(data_dir: Path, db_path: Path) -> float:
    """Peak resident memory of a migration in its own process."""
    code = (
        "import resource, sys; from mcp_state.legacy import migrate_all; "
        "migrate_all(sys.argv[1], db_path=sys.argv[2]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir), str(db_path)], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-lines", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=100_000, help="entries of the other kinds, in total")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mcp-state-bench-migration-"))
    try:
        data_dir = work / "data"
        started = time.perf_counter()
        generate(data_dir, args.audit_lines, args.entries)
        size = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
        print(
            f"generated {args.audit_lines:,} audit lines and ~{args.entries:,} other entries "
            f"({size / 2**20:.0f} MB) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        audit_only = work / "audit-only"
        (audit_only / "audit").mkdir(parents=True)
        (audit_only / "audit" / "audit.jsonl").symlink_to(data_dir / "audit" / "audit.jsonl")
        counts: dict[str, int] = {}

        def ours(source: Path) -> None:
            counts.update(migrate_all(source, db_path=fresh(work, "ours.duckdb")))

        whole = alternate(
            {
                "migrate": lambda: ours(data_dir),
                "read_json": lambda: baseline(data_dir, fresh(work, "base.duckdb")),
            },
            repetitions=args.repetitions,
        )
        print(f"migrated: {counts}", flush=True)
        audit = alternate(
            {
                "migrate": lambda: ours(audit_only),
                "read_json": lambda: baseline(audit_only, fresh(work, "base.duckdb")),
                "read_json into audit_log": lambda: baseline_into_schema(
                    audit_only / "audit" / "audit.jsonl", fresh(work, "base.duckdb")
                ),
            },
            repetitions=args.repetitions,
        )
        ours(data_dir)
        again = alternate(
            {"again": lambda: _timed(migrate_all, data_dir, db_path=work / "ours.duckdb")},
            repetitions=1,
            warmup=0,
        )["again"]
        dry = alternate(
            {"dry": lambda: _timed(migrate_all, data_dir, db_path=work / "ours.duckdb", dry_run=True)},
            repetitions=1,
            warmup=0,
        )["dry"]
        memory = peak_memory_mb(data_dir, fresh(work, "memory.duckdb"))

        def figure(name: str, ours_label: str, ours_stats, other_label: str, other_stats, target):  # type: ignore[no-untyped-def]
            return Figure(
                name,
                ours_label,
                ours_stats.median,
                other_label,
                other_stats.median,
                "s",
                target,
                ours_spread=ours_stats.spread,
                other_spread=other_stats.spread,
            )

        figures = [
            figure("all files", "migrate", whole["migrate"], "read_json", whole["read_json"], 2.0),
            figure("audit log only", "migrate", audit["migrate"], "read_json", audit["read_json"], None),
            figure(
                "audit log only, same table",
                "migrate",
                audit["migrate"],
                "read_json into audit_log",
                audit["read_json into audit_log"],
                2.0,
            ),
            figure("all files, again (no change)", "migrate", again, "read_json", whole["read_json"], None),
            figure("all files, dry run", "migrate --dry-run", dry, "read_json", whole["read_json"], None),
        ]
        print_table(figures)
        print(f"peak memory of a migration: {memory:.0f} MB (input {size / 2**20:.0f} MB)")
        path = write_report(
            "migration",
            figures,
            {
                "audit_lines": args.audit_lines,
                "other_entries": sum(v for k, v in counts.items() if k != "audit"),
                "input_mb": round(size / 2**20, 1),
                "peak_memory_mb": round(memory),
                "counts": counts,
            },
        )
        print(f"report: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
