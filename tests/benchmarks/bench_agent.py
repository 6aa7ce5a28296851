"""Agent read tools at scale: p50 over stdio at 1,000 rows against 1,000,000 rows, side by side.

Two databases are generated with bulk SQL (``tests/agent_data.py``: DuckDB ``range()``, not
row by row): each has ``size`` knowledge items (300-character contents, with their word
index), ``size`` audit entries and ``size`` sync history runs (12 tables, two weeks of
daily syncs plus filler). One ``mcp-state serve`` per database runs over stdio; every read
tool is called with its default arguments (and the filters agents use most), alternating
the two servers call by call so that a noisy neighbour slows both alike. The target (issue
9): each tool's p50 at the large size is at most 3x its p50 at the small one. The bytes of
each default result (its text content) are printed too.

    python tests/benchmarks/bench_agent.py            # 1,000 vs 1,000,000 rows, 60 calls each
    python tests/benchmarks/bench_agent.py --quick    # 1,000 vs 100,000 rows, 20 calls each
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import duckdb
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: agent_data
sys.path.insert(0, str(Path(__file__).resolve().parent))  # common

from agent_data import audit_data, knowledge_data, sync_data
from common import Figure, Stats, alternate_async, print_table, write_report

from mcp_state.db import Database
from mcp_state.knowledge_index import WORDS_OF

TARGET = 3.0
# (label, tool, arguments): default calls, plus the filters agents use most.
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("list_knowledge_items", "list_knowledge_items", {}),
    ("search_knowledge", "search_knowledge", {"query": "revenue mrr"}),
    ("search_knowledge(one word)", "search_knowledge", {"query": "revenue"}),
    ("search_knowledge(status)", "search_knowledge", {"query": "revenue mrr", "status": ["archived"]}),
    ("search_knowledge(tag)", "search_knowledge", {"query": "revenue", "tag": "t4"}),
    ("get_knowledge_item", "get_knowledge_item", {"item_id": "k-7"}),
    ("get_sync_history", "get_sync_history", {}),
    ("get_sync_history(table)", "get_sync_history", {"table_id": "table_03"}),
    ("get_sync_history(error,7d)", "get_sync_history", {"status": "error", "since": "7d"}),
    ("summarize_sync_failures", "summarize_sync_failures", {}),
    ("list_sync_states", "list_sync_states", {}),
    ("get_sync_state", "get_sync_state", {"table_id": "table_03"}),
    ("query_audit_log", "query_audit_log", {}),
    ("query_audit_log(actor)", "query_audit_log", {"user_id": "Claude"}),
    ("query_audit_log(24h)", "query_audit_log", {"since": "24h", "action": "update_user"}),
]


def generate(path: Path, size: int) -> float:
    """A state with ``size`` rows in each big table; returns the seconds it took."""
    started = time.perf_counter()
    with Database(path, idle_release=None) as db:
        db.open()  # the schema, by the migrations
    now = datetime.now(UTC)
    with duckdb.connect(str(path)) as conn:
        knowledge_data(conn, size, now)
        conn.execute(WORDS_OF.format(where=""))
        audit_data(conn, size, now)
        sync_data(conn, now, filler=max(0, size - 12 * 14))
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def server(path: Path) -> StdioServerParameters:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MCP_STATE_ACTOR": "bench"}
    for name in ("HOME", "PYTHONPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_state", "serve", "--db", str(path)], env=env
    )


async def measure(
    paths: dict[str, Path], calls: int
) -> tuple[dict[str, dict[str, Stats]], dict[str, dict[str, int]]]:
    sizes = list(paths)
    async with Client(server(paths[sizes[0]])) as small, Client(server(paths[sizes[1]])) as large:
        clients = {sizes[0]: small, sizes[1]: large}
        sizes_bytes: dict[str, dict[str, int]] = {}
        for label, tool, args in CALLS:  # warm up, and the size of each default result
            for size, client in clients.items():
                result = await client.call_tool(tool, args)
                assert not result.is_error, f"{label} at {size}: {result.content[0].text}"  # type: ignore[union-attr]
                text = "".join(getattr(block, "text", "") for block in result.content)
                sizes_bytes.setdefault(label, {})[size] = len(text.encode())
        stats: dict[str, dict[str, Stats]] = {}
        for label, tool, args in CALLS:

            def timed(client: Client, tool: str = tool, args: dict[str, Any] = args):  # type: ignore[no-untyped-def]
                async def call() -> float:
                    started = time.perf_counter()
                    await client.call_tool(tool, args)
                    return time.perf_counter() - started

                return call

            stats[label] = await alternate_async(
                {size: timed(client) for size, client in clients.items()}, repetitions=calls, warmup=2
            )
        return stats, sizes_bytes


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000, help="rows per big table, small side")
    parser.add_argument("--large", type=int, default=1_000_000, help="rows per big table, large side")
    parser.add_argument("--calls", type=int, default=60, help="timed calls per tool and side")
    parser.add_argument("--quick", action="store_true", help="100,000 rows on the large side, 20 calls")
    args = parser.parse_args(argv)
    large, calls = (100_000, 20) if args.quick else (args.large, args.calls)
    with tempfile.TemporaryDirectory(prefix="mcp-state-bench-agent-") as tmp:
        paths = {f"{args.small:,}": Path(tmp) / "small.duckdb", f"{large:,}": Path(tmp) / "large.duckdb"}
        for size, path in paths.items():
            seconds = generate(path, int(size.replace(",", "")))
            print(f"generated {size} rows per table in {seconds:.1f} s", flush=True)
        stats, sizes_bytes = anyio.run(measure, paths, calls)
    small_label, large_label = list(paths)
    figures = [
        Figure(
            name=label,
            ours_label=f"p50 at {large_label}",
            ours=stats[label][large_label].p50 * 1000,
            other_label=f"p50 at {small_label}",
            other=stats[label][small_label].p50 * 1000,
            unit="ms",
            target=TARGET,
            ours_spread=stats[label][large_label].spread,
            other_spread=stats[label][small_label].spread,
            extra={f"bytes at {size}": float(n) for size, n in sizes_bytes[label].items()},
            section="agent tools at scale",
        )
        for label, _, _ in CALLS
    ]
    print(
        f"\n{'tool':28} {'p50 ' + small_label:>14} {'p50 ' + large_label:>16} {'ratio':>7} "
        f"{'bytes ' + small_label:>13} {'bytes ' + large_label:>15}"
    )
    for figure in figures:
        b = figure.extra
        print(
            f"{figure.name:28} {figure.other:11.2f} ms {figure.ours:13.2f} ms {figure.ratio:6.2f}x "
            f"{b[f'bytes at {small_label}']:13,.0f} {b[f'bytes at {large_label}']:15,.0f}"
        )
    print()
    print_table(figures)
    path = write_report("agent", figures, {"calls": calls, "small": small_label, "large": large_label})
    print(f"\nwrote {path}")
    return figures


if __name__ == "__main__":
    main()
