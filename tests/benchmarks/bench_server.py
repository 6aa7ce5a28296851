"""The server over stdio: call latency, cold start, catalog size and peak memory.

    python tests/benchmarks/bench_server.py [--calls 1000] [--starts 15] [--mode auto|legacy] [--quick]

1. Latency of one tool call over stdio, through the SDK's own client, p50 and p95. Three
   servers run at once and each round makes each of these calls once, in a random order:
   - ``mcp-state serve`` (1,000 tables' sync states): ``get_sync_state`` of one table, called
     again and again (answered from the server's read cache), and of a different table each
     call (every read a first read, so it always runs a query);
   - the floor: the same SDK serving a tool that returns a constant row of the same shape
     (an ``async`` tool, so the SDK runs it without a hop to a worker thread);
   - connect-per-call: the same SDK serving ``get_sync_state`` that opens the DuckDB file on
     every call (read-only), as connect-per-query servers do, on a copy of the same file.
   Targets: p50 at most 1.25x the constant tool (the same table again), and at least 5x faster
   than connect-per-call (compared with first reads, the stricter side).
2. Cold start: from spawning the process to an answered ``tools/list``, ``mcp-state serve``
   vs a bare ``MCPServer`` with one tool, alternating. Target: at most 1.3x.
3. Catalog size: bytes of the ``tools/list`` result as the server sends it (compact JSON),
   per tool on average, next to the bare server's one tool. Target: at most 1,200 bytes per tool.
4. Peak memory (VmHWM of the ``mcp-state serve`` process) after ``sql_query`` of a query that
   produces 10^8 rows, with the default limit, next to the same process before the query.
   Target: under 150 MB.

Not a test: pytest never collects this folder. Writes ``results/server.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Stats, alternate_async, print_table, write_report
from mcp import Client, StdioServerParameters

TABLES = 1000
ROWS_QUERY = "SELECT i, i * 2 AS twice, 'row ' || i AS label FROM range(100000000) t(i)"

_ROW = """
    ROW = {
        "table_id": "orders", "last_sync": datetime(2025, 1, 1, tzinfo=timezone.utc), "rows": 10,
        "file_size_bytes": 100, "uncompressed_size_bytes": 200, "columns": 3, "hash": "abc",
        "status": "ok", "error": None,
    }
"""

BARE_SERVER = textwrap.dedent(
    """
    from datetime import datetime, timezone

    from mcp.server.mcpserver import MCPServer

    from mcp_state.types import SyncState

    mcp = MCPServer("bare")
    """
    + _ROW
    + '''

    @mcp.tool()
    async def constant(table_id: str) -> SyncState:
        """Return a constant sync state."""
        return ROW


    if __name__ == "__main__":
        mcp.run()
    '''
)

CONNECT_PER_CALL_SERVER = textwrap.dedent(
    '''
    import sys
    from datetime import timezone

    import duckdb
    from mcp.server.mcpserver import MCPServer

    from mcp_state.types import SyncState

    PATH = sys.argv[1]
    mcp = MCPServer("connect-per-call")


    @mcp.tool()
    def get_sync_state(table_id: str) -> SyncState:
        """Get one table's latest sync, opening the database for this call only."""
        conn = duckdb.connect(PATH, read_only=True)
        try:
            cursor = conn.execute("SELECT * FROM sync_state WHERE table_id = ?", [table_id])
            names = [col[0] for col in cursor.description]
            row = dict(zip(names, cursor.fetchone()))
        finally:
            conn.close()
        row["last_sync"] = row["last_sync"].replace(tzinfo=timezone.utc)
        return row


    if __name__ == "__main__":
        mcp.run()
    '''
)


def seed(path: Path) -> None:
    """1,000 tables' sync states plus ``orders``, each with one history row."""
    from mcp_state.db import Database
    from mcp_state.gateway import Gateway

    with Database(path, idle_release=None) as db:
        gateway = Gateway(db)
        with gateway.transaction():
            gateway.execute(
                """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, uncompressed_size_bytes,
                                           columns, hash, status)
                   SELECT printf('table_%04d', i), TIMESTAMP '2025-01-01', i, i * 10, i * 30, 3, md5(i::VARCHAR), 'ok'
                   FROM range(?) r(i)""",
                [TABLES],
            )
            gateway.execute(
                """INSERT INTO sync_state VALUES ('orders', TIMESTAMP '2025-01-01', 10, 100, 200, 3, 'abc', 'ok', NULL)"""
            )
            gateway.execute(
                """INSERT INTO sync_history (id, table_id, synced_at, rows, status)
                   SELECT 'h' || table_id, table_id, last_sync, rows, status FROM sync_state"""
            )


def _env(work: Path) -> dict[str, str]:
    env = {
        "DATA_DIR": str(work / "data"),
        "MCP_STATE_ACTOR": "bench",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    for name in ("HOME", "PYTHONPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def commands(work: Path) -> dict[str, list[str]]:
    return {
        "mcp-state": [sys.executable, "-m", "mcp_state", "serve", "--db", str(work / "state.duckdb")],
        "constant": [sys.executable, str(work / "bare_server.py")],
        "connect-per-call": [sys.executable, str(work / "connect_server.py"), str(work / "copy.duckdb")],
    }


def params(work: Path) -> dict[str, StdioServerParameters]:
    return {
        name: StdioServerParameters(command=cmd[0], args=cmd[1:], env=_env(work))
        for name, cmd in commands(work).items()
    }


# -- 1. latency ---------------------------------------------------------------------------
async def latency(work: Path, calls: int, mode: str) -> dict[str, Stats]:
    servers = params(work)
    async with (
        Client(servers["mcp-state"], mode=mode) as ours,
        Client(servers["constant"], mode=mode) as constant,
        Client(servers["connect-per-call"], mode=mode) as per_call,
    ):
        tables = iter([f"table_{i:04d}" for i in range(TABLES)] * (calls // TABLES + 2))

        def timed(client: Client, tool: str, table: str | None = None):  # type: ignore[no-untyped-def]
            async def call() -> float:
                args = {"table_id": table or next(tables)}
                started = time.perf_counter()
                result = await client.call_tool(tool, args)
                elapsed = time.perf_counter() - started
                assert not result.is_error, result.content
                return elapsed

            return call

        sides = {
            "same table": timed(ours, "get_sync_state", "orders"),
            "a new table each call": timed(ours, "get_sync_state"),
            "constant": timed(constant, "constant", "orders"),
            "connect-per-call": timed(per_call, "get_sync_state", "orders"),
        }
        # Warm-up: the first calls open the database and fill the SDK's caches. Only
        # ``orders`` is read, so every ``a new table each call`` read stays a first read.
        for _ in range(30):
            for name in ("same table", "constant", "connect-per-call"):
                await sides[name]()
        return await alternate_async(sides, repetitions=calls, warmup=0, shuffle=True)


# -- 2. cold start ------------------------------------------------------------------------
async def cold_start(work: Path, starts: int, mode: str) -> dict[str, Stats]:
    servers = params(work)

    def start(name: str):  # type: ignore[no-untyped-def]
        async def run() -> float:
            started = time.perf_counter()
            async with Client(servers[name], mode=mode) as client:
                tools = await client.list_tools()
                elapsed = time.perf_counter() - started
            assert tools.tools
            return elapsed

        return run

    # The first round only warms the OS file cache.
    return await alternate_async(
        {"mcp-state": start("mcp-state"), "bare": start("constant")}, repetitions=starts
    )


# -- 3 and 4: raw JSON-RPC over the process's pipes (exact bytes, and its PID) ------------
class RawServer:
    """A server process spoken to line by line, as a stdio client does."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        self._id = 0
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _send(self, message: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, object]) -> bytes:
        """The raw response line (bytes) to one request."""
        self._id += 1
        self._send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the server exited while answering {method}")
            if json.loads(line).get("id") == self._id:
                return line

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc (Linux only)")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def catalog(work: Path) -> dict[str, float]:
    """Bytes of the ``tools/list`` result, compact JSON as sent, for both servers."""
    out: dict[str, float] = {}
    for name in ("mcp-state", "constant"):
        server = RawServer(commands(work)[name], _env(work))
        try:
            result = json.loads(server.request("tools/list", {}))["result"]
        finally:
            server.close()
        size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
        out[f"{name} bytes"] = size
        out[f"{name} tools"] = len(result["tools"])
    return out


def peak_memory(work: Path) -> dict[str, float]:
    """VmHWM of ``mcp-state serve`` before and after ``sql_query`` of 10^8 rows (default limit)."""
    server = RawServer(commands(work)["mcp-state"], _env(work))
    try:
        server.request("tools/list", {})
        warm = json.loads(
            server.request("tools/call", {"name": "sql_query", "arguments": {"sql": "SELECT 1"}})
        )
        assert not warm["result"].get("isError"), warm
        before = server.peak_rss_mb()
        started = time.perf_counter()
        answer = json.loads(
            server.request("tools/call", {"name": "sql_query", "arguments": {"sql": ROWS_QUERY}})
        )
        seconds = time.perf_counter() - started
        after = server.peak_rss_mb()
    finally:
        server.close()
    result = answer["result"]
    assert not result.get("isError"), result
    structured = result["structuredContent"]
    assert structured["truncated"] and structured["row_count"] == 100, structured
    return {"before_mb": before, "after_mb": after, "seconds": seconds}


# -- the figures ----------------------------------------------------------------------------
def measure(work: Path, calls: int, starts: int, mode: str) -> tuple[list[Figure], dict[str, object]]:
    lat = anyio.run(latency, work, calls, mode)
    ours, miss, floor, per_call = (
        lat["same table"],
        lat["a new table each call"],
        lat["constant"],
        lat["connect-per-call"],
    )
    figures = [
        Figure(
            "get_sync_state over stdio, p50 (same table again)",
            "mcp-state",
            ours.p50,
            "constant tool",
            floor.p50,
            "s",
            1.25,
            section="latency",
        ),
        Figure(
            "get_sync_state over stdio, p95 (same table again)",
            "mcp-state",
            ours.p95,
            "constant tool",
            floor.p95,
            "s",
            None,
            section="latency",
        ),
        Figure(
            "get_sync_state over stdio, p50 (a new table each call)",
            "mcp-state",
            miss.p50,
            "constant tool",
            floor.p50,
            "s",
            None,
            section="latency",
            note="every read a first read: no repeat of a cached answer",
        ),
        Figure(
            "get_sync_state p50 (a new table each call) vs connect-per-call",
            "mcp-state",
            miss.p50,
            "connect-per-call",
            per_call.p50,
            "s",
            5,
            kind="speedup",
            section="latency",
        ),
        Figure(
            "get_sync_state p95 (a new table each call) vs connect-per-call",
            "mcp-state",
            miss.p95,
            "connect-per-call",
            per_call.p95,
            "s",
            None,
            kind="speedup",
            section="latency",
        ),
    ]
    cold = anyio.run(cold_start, work, starts, mode)
    figures.append(
        Figure(
            "cold start: spawn to answered tools/list",
            "mcp-state serve",
            cold["mcp-state"].median,
            "bare MCPServer",
            cold["bare"].median,
            "s",
            1.3,
            ours_spread=cold["mcp-state"].spread,
            other_spread=cold["bare"].spread,
            section="cold start",
        )
    )
    sizes = catalog(work)
    per_tool = sizes["mcp-state bytes"] / sizes["mcp-state tools"]
    figures.append(
        Figure(
            f"catalog: tools/list, {sizes['mcp-state tools']:.0f} tools ({sizes['mcp-state bytes']:,.0f} B)",
            "mcp-state",
            per_tool,
            "bare one-tool server",
            sizes["constant bytes"] / sizes["constant tools"],
            "B/tool",
            1200,
            kind="limit",
            section="catalog",
            extra=sizes,
        )
    )
    memory = peak_memory(work)
    figures.append(
        Figure(
            "peak RSS after sql_query of 10^8 rows",
            "after",
            memory["after_mb"],
            "before the query",
            memory["before_mb"],
            "MB",
            150,
            kind="limit",
            section="memory",
            extra=memory,
        )
    )
    notes: dict[str, object] = {
        "calls": calls,
        "starts": starts,
        "mode": mode,
        "latency_ms": {
            name: {"p50": round(s.p50 * 1000, 3), "p95": round(s.p95 * 1000, 3), "spread": round(s.spread, 3)}
            for name, s in lat.items()
        },
        "catalog": sizes,
        "memory": memory,
    }
    return figures, notes


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per side (default 1000)")
    parser.add_argument("--starts", type=int, default=15, help="timed cold starts per server (default 15)")
    parser.add_argument("--mode", default="auto", choices=("auto", "legacy"), help="client protocol mode")
    parser.add_argument("--quick", action="store_true", help="300 calls and 5 starts")
    args = parser.parse_args(argv)
    calls, starts = (300, 5) if args.quick else (args.calls, args.starts)
    with tempfile.TemporaryDirectory(prefix="mcp-state-bench-") as tmp:
        work = Path(tmp)
        (work / "bare_server.py").write_text(BARE_SERVER)
        (work / "connect_server.py").write_text(CONNECT_PER_CALL_SERVER)
        seed(work / "state.duckdb")
        shutil.copy(work / "state.duckdb", work / "copy.duckdb")
        figures, notes = measure(work, calls, starts, args.mode)
    print_table(figures)
    path = write_report("server", figures, notes)
    print(f"\nwrote {path}")
    return figures


if __name__ == "__main__":
    main()
