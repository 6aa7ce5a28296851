"""Server latency and cold start, side by side with the same SDK serving a constant.

    python tests/benchmarks/bench_server.py [--calls 1000] [--starts 15] [--mode auto|legacy]

1. Latency: one ``get_sync_state`` call over stdio to ``mcp-state serve`` (a database with
   1,000 tables' sync states), next to a call of a tool that returns a constant row of the
   same shape from a bare ``MCPServer`` script, also over stdio. Both servers run at once;
   calls alternate between them, after a warm-up.
2. Cold start: from spawning the process to an answered ``tools/list``, for
   ``python -m mcp_state serve`` and for the bare server, alternating.

Prints median, p95 and mean of each and the ratios (targets: latency <= 1.25x,
cold start <= 1.3x). Not a test: pytest never collects this folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

BARE_SERVER = textwrap.dedent(
    '''
    from datetime import datetime, timezone

    from mcp.server.mcpserver import MCPServer

    from mcp_state.types import SyncState

    mcp = MCPServer("bare")
    ROW = {
        "table_id": "orders", "last_sync": datetime(2025, 1, 1, tzinfo=timezone.utc), "rows": 10,
        "file_size_bytes": 100, "uncompressed_size_bytes": 200, "columns": 3, "hash": "abc",
        "status": "ok", "error": None,
    }


    @mcp.tool()
    def constant(table_id: str) -> SyncState:
        """Return a constant sync state."""
        return ROW


    if __name__ == "__main__":
        mcp.run()
    '''
)


def seed(path: Path) -> None:
    from mcp_state.db import Database
    from mcp_state.repositories.sync_state import SyncStateRepository

    with Database(path, idle_release=None) as db:
        repo = SyncStateRepository(db)
        for i in range(1000):
            repo.update_sync(
                f"table_{i:04d}",
                rows=i,
                file_size_bytes=i * 10,
                hash=f"h{i}",
                columns=3,
                synced_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        repo.update_sync(
            "orders", rows=10, file_size_bytes=100, hash="abc", uncompressed_size_bytes=200, columns=3
        )


def server_params(work: Path) -> dict[str, StdioServerParameters]:
    env = {"DATA_DIR": str(work / "data"), "MCP_STATE_ACTOR": "bench", "PATH": "/usr/bin:/bin"}
    return {
        "mcp-state": StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcp_state", "serve", "--db", str(work / "state.duckdb")],
            env=env,
        ),
        "bare": StdioServerParameters(command=sys.executable, args=[str(work / "bare_server.py")], env=env),
    }


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, statistics.fmean(ordered)


async def latency(params: dict[str, StdioServerParameters], calls: int, mode: str) -> dict[str, list[float]]:
    plan = {
        "mcp-state": ("get_sync_state", {"table_id": "orders"}),
        "bare": ("constant", {"table_id": "orders"}),
    }
    samples: dict[str, list[float]] = {name: [] for name in plan}
    async with Client(params["mcp-state"], mode=mode) as ours, Client(params["bare"], mode=mode) as bare:
        clients = {"mcp-state": ours, "bare": bare}
        for name, client in clients.items():  # warm-up: open the database, fill caches
            for _ in range(50):
                result = await client.call_tool(*plan[name])
                assert not result.is_error, result.content
        for i in range(calls):
            order = ("mcp-state", "bare") if i % 2 == 0 else ("bare", "mcp-state")
            for name in order:
                started = time.perf_counter()
                result = await clients[name].call_tool(*plan[name])
                samples[name].append((time.perf_counter() - started) * 1000)
                assert not result.is_error, result.content
    return samples


async def cold_start(
    params: dict[str, StdioServerParameters], starts: int, mode: str
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in params}
    for i in range(starts + 1):
        order = list(params) if i % 2 == 0 else list(reversed(params))
        for name in order:
            started = time.perf_counter()
            async with Client(params[name], mode=mode) as client:
                tools = await client.list_tools()
                elapsed = (time.perf_counter() - started) * 1000
            assert tools.tools
            if i:  # the first round only warms the OS file cache
                samples[name].append(elapsed)
    return samples


def table(title: str, samples: dict[str, list[float]], target: float) -> str:
    rows = [
        f"{title} ({len(samples['bare'])} samples each)",
        f"  {'server':<10} {'median ms':>10} {'p95 ms':>10} {'mean ms':>10}",
    ]
    stats = {name: summary(values) for name, values in samples.items()}
    for name, (med, p95, mean) in stats.items():
        rows.append(f"  {name:<10} {med:>10.3f} {p95:>10.3f} {mean:>10.3f}")
    ratio = stats["mcp-state"][0] / stats["bare"][0]
    verdict = "ok" if ratio <= target else "OVER TARGET"
    rows.append(f"  ratio of medians: {ratio:.3f}x (target <= {target}x): {verdict}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per server (default 1000)")
    parser.add_argument("--starts", type=int, default=15, help="timed cold starts per server (default 15)")
    parser.add_argument("--mode", default="auto", choices=("auto", "legacy"), help="client protocol mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcp-state-bench-") as tmp:
        work = Path(tmp)
        (work / "bare_server.py").write_text(BARE_SERVER)
        seed(work / "state.duckdb")
        params = server_params(work)
        print(f"python {sys.version.split()[0]}, client mode {args.mode}")
        print(
            table(
                "get_sync_state vs constant tool, one call over stdio",
                anyio.run(latency, params, args.calls, args.mode),
                1.25,
            )
        )
        print(
            table(
                "cold start to an answered tools/list",
                anyio.run(cold_start, params, args.starts, args.mode),
                1.3,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
