"""DuckDB file against PostgreSQL, side by side in one run: latency per operation, and throughput
of 1, 4 and 8 writing processes.

    python tests/benchmarks/bench_backends.py [--pg URL] [--calls 200] [--rounds 5]
        [--audit-rows 1000000] [--writes 200] [--procs 1,4,8] [--quick]

``--pg`` (default ``$MCP_STATE_TEST_POSTGRES``) is a role that may create databases: each run
gets a new database, dropped after. Every figure alternates the backends round by round
(A B, then B A, ...), so a busy neighbour slows both alike, and reports min / median / max
over the rounds.

1. Latency, the mean of ``--calls`` calls per round, on one process, through the repositories
   (a ``Database`` as applications use it, read cache off on both): a point read
   (``SyncStateRepository.get_table_state``), an upsert (``DatasetPermissionRepository.grant``), an insert
   (``AuditRepository.log``), ``record_sync`` through MCP (the SDK's in-memory client over
   ``build_server``: the tool, its transaction and its audit row), and a ``GROUP BY`` over
   ``--audit-rows`` audit rows (fewer calls: ``max(3, calls // 50)``).
2. Throughput: N processes (``tests/helpers/pg_load.py api``) each make ``--writes`` mixed writes
   on the same rows (votes, syncs, audit rows, grants) from the moment all are connected; ops/s
   = all their operations / the slowest one's time. Errors are counted (on a DuckDB file the
   processes take turns with the file; one that waits past MCP_STATE_LOCK_TIMEOUT fails).

Not a test: pytest never collects this folder. Writes ``results/backends.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
sys.path.insert(0, str(ROOT / "tests"))

import pg_load  # noqa: E402
from pg_support import with_database  # noqa: E402

from mcp_state.db import Database  # noqa: E402
from mcp_state.gateway import Gateway  # noqa: E402
from mcp_state.repositories import AuditRepository, DatasetPermissionRepository, SyncStateRepository  # noqa: E402
from mcp_state.sql.hardening import hardened_database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "backends.json"
BACKENDS = ("duckdb", "postgresql")

FILL_AUDIT = (
    "INSERT INTO audit_log (id, timestamp, user_id, action, resource, result, duration_ms) "
    "SELECT 'b-' || g, TIMESTAMP '2026-01-01 00:00:00', 'u' || (g % 50), 'act' || (g % 20), "
    "'r' || (g % 1000), 'ok', g % 100 FROM generate_series(1, {n}) AS s(g)"
)
GROUP_BY = "SELECT action, count(*) AS n, avg(duration_ms) AS ms FROM audit_log GROUP BY action"


# -- databases -------------------------------------------------------------------------------------
class Places:
    """New databases on demand: DuckDB files in a temporary folder, PostgreSQL databases on ``admin``."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.folder = Path(tempfile.mkdtemp(prefix="bench-backends-"))
        self.made: list[str] = []

    def new(self, backend: str) -> str:
        name = f"bench_{os.getpid()}_{len(self.made)}"
        self.made.append(name)
        if backend == "duckdb":
            return str(self.folder / f"{name}.duckdb")
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin, name)

    def drop_all(self) -> None:
        import shutil

        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(self.folder, ignore_errors=True)


# -- latency -------------------------------------------------------------------------------------
def prepared(location: str, audit_rows: int) -> None:
    with Database(location, idle_release=None) as db:
        pg_load.seed(db)
        sync = SyncStateRepository(db)
        for t in range(100):
            sync.update_sync(f"t{t}", rows=t, file_size_bytes=t, hash=f"h{t}")
        g = Gateway(db)
        with g.transaction():
            g.execute(FILL_AUDIT.format(n=int(audit_rows)))


@contextmanager
def latency_calls(location: str, calls: int) -> Iterator[dict[str, Callable[[], float]]]:
    """Each operation as a function that makes its calls and returns seconds per call."""
    from mcp import Client

    from mcp_state.server import ServerSettings, build_server

    # Configured as the server's, so that on a file both share DuckDB's instance in this process.
    db = hardened_database(location, idle_release=None)
    sync, perms, audit = SyncStateRepository(db), DatasetPermissionRepository(db), AuditRepository(db)
    g = Gateway(db)
    counter = iter(range(10**9))

    def per_call(fn: Callable[[int], Any], n: int = calls) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn(next(counter))
        return (time.perf_counter() - start) / n

    async def mcp_calls() -> float:
        server = build_server(ServerSettings(db_path=location, actor="bench"))
        async with Client(server) as client:
            await client.call_tool(
                "record_sync", {"table_id": "t0", "rows": 1, "file_size_bytes": 1, "hash": "w"}
            )
            start = time.perf_counter()
            for i in range(calls):
                await client.call_tool(
                    "record_sync",
                    {"table_id": f"t{i % 100}", "rows": i, "file_size_bytes": i, "hash": f"m{i}"},
                )
            return (time.perf_counter() - start) / calls

    try:
        yield {
            "point read": lambda: per_call(lambda i: sync.get_table_state(f"t{i % 100}")),
            "upsert": lambda: per_call(
                lambda i: perms.grant(f"u{i % 20}", f"d{i % 100}", ("read", "write")[i % 2])
            ),
            "insert": lambda: per_call(lambda i: audit.log("bench", "bench_insert", f"r{i}")),
            "record_sync (MCP)": lambda: anyio.run(mcp_calls),
            "GROUP BY audit": lambda: per_call(lambda i: g.fetch_all(GROUP_BY), max(3, calls // 50)),
        }
    finally:
        db.close()


def latency(places: Places, calls: int, rounds: int, audit_rows: int) -> dict[str, dict[str, list[float]]]:
    locations = {b: places.new(b) for b in BACKENDS}
    for backend, location in locations.items():
        print(f"  filling {backend}: {audit_rows:,} audit rows ...", file=sys.stderr, flush=True)
        prepared(location, audit_rows)
    samples: dict[str, dict[str, list[float]]] = {}
    for r in range(rounds + 1):  # round 0 warms up
        order = BACKENDS if r % 2 else tuple(reversed(BACKENDS))
        for backend in order:
            with latency_calls(locations[backend], calls) as ops:
                for op, fn in ops.items():
                    seconds = fn()
                    if r:
                        samples.setdefault(op, {}).setdefault(backend, []).append(seconds)
    return samples


# -- throughput ------------------------------------------------------------------------------------
def throughput_run(location: str, procs: int, writes: int) -> tuple[float, int]:
    """ops/s of ``procs`` writing processes, and their errors."""
    with Database(location, idle_release=None) as db:
        pg_load.seed(db)
    reports = pg_load.run_processes(location, ["api"] * procs, writes)
    slowest = max(r["seconds"] for r in reports)
    return sum(r["ops"] - r["errors"] for r in reports) / slowest, sum(r["errors"] for r in reports)


def throughput(
    places: Places, counts: list[int], writes: int, rounds: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    found: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in range(rounds):
        for procs in counts:
            order = BACKENDS if r % 2 else tuple(reversed(BACKENDS))
            for backend in order:
                rate, errors = throughput_run(places.new(backend), procs, writes)
                row = found.setdefault(f"{procs} process{'es' if procs > 1 else ''}", {}).setdefault(
                    backend, {"ops/s": [], "errors": []}
                )
                row["ops/s"].append(rate)
                row["errors"].append(errors)
                print(
                    f"  round {r + 1}: {procs} x {backend}: {rate:,.0f} ops/s, {errors} errors",
                    file=sys.stderr,
                )
    return found


# -- report ----------------------------------------------------------------------------------------
def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return " / ".join(
        f"{v * scale:,.{digits}f}" for v in (min(values), statistics.median(values), max(values))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", default=os.environ.get("MCP_STATE_TEST_POSTGRES"), help="admin URL")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--procs", default="1,4,8")
    parser.add_argument("--quick", action="store_true", help="small sizes: a check that it runs")
    args = parser.parse_args()
    if not args.pg:
        raise SystemExit(
            "pass --pg postgresql://USER:PASSWORD@HOST/postgres (or set MCP_STATE_TEST_POSTGRES)"
        )
    if args.quick:
        args.calls, args.rounds, args.audit_rows, args.writes = 20, 2, 10_000, 40
    counts = [int(n) for n in args.procs.split(",")]
    places = Places(args.pg)
    try:
        print("latency ...", file=sys.stderr, flush=True)
        lat = latency(places, args.calls, args.rounds, args.audit_rows)
        print("throughput ...", file=sys.stderr, flush=True)
        thr = throughput(places, counts, args.writes, args.rounds)
    finally:
        places.drop_all()
    print(f"\nLatency, ms per call (min / median / max of {args.rounds} rounds of {args.calls} calls)")
    print(f"{'operation':<22} {'DuckDB file':>26} {'PostgreSQL':>26}")
    for op, sides in lat.items():
        print(f"{op:<22} {spread(sides['duckdb'], 1000):>26} {spread(sides['postgresql'], 1000):>26}")
    print(
        f"\nThroughput, ops/s of N writing processes ({args.writes} writes each; min / median / max of {args.rounds})"
    )
    print(f"{'processes':<22} {'DuckDB file':>26} {'PostgreSQL':>26}")
    for label, sides in thr.items():
        cells = [
            f"{spread(sides[b]['ops/s'], digits=0)}"
            + (f" ({int(sum(sides[b]['errors']))} err)" if sum(sides[b]["errors"]) else "")
            for b in BACKENDS
        ]
        print(f"{label:<22} {cells[0]:>26} {cells[1]:>26}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"args": vars(args) | {"pg": None}, "latency": lat, "throughput": thr}, indent=2)
    )


if __name__ == "__main__":
    main()
