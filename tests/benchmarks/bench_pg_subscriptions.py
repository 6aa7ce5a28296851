"""How long a change takes to reach a subscribed client on PostgreSQL: a write of another
process (another ``Database`` on the same database, heard through LISTEN/NOTIFY) against a
write through the server itself (its tool call), side by side, alternating, in one run.

    python tests/benchmarks/bench_pg_subscriptions.py [--pg URL] [--writes 50]

``--pg`` (default ``$MCP_STATE_TEST_POSTGRES``) is a role that may create databases: the run
gets a new database, dropped after. Each figure: the time from the end of the write (its commit)
to the client holding ``notifications/resources/updated``, min / median / max over the writes.
Not a test: pytest never collects this folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp_types import ResourceUpdatedNotification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_support import throwaway_database

from mcp_state.db import Database
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.server import ServerSettings, build_server

URI = "state://sync/orders"


async def measure(url: str, writes: int) -> dict[str, list[float]]:
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification) and message.params.uri == URI:
            arrived.set()

    figures: dict[str, list[float]] = {"another process": [], "this server": []}
    server = build_server(ServerSettings(db_path=url, actor="bench"))
    with Database(url) as other:
        sync = SyncStateRepository(other)
        async with Client(server, mode="legacy", message_handler=on_message) as client:
            await client.subscribe_resource(URI)
            await anyio.sleep(1.0)  # the server's listener connects
            for n in range(writes):
                for side in (
                    ("another process", "this server") if n % 2 else ("this server", "another process")
                ):
                    arrived = anyio.Event()
                    if side == "this server":
                        args = {"table_id": "orders", "rows": n, "file_size_bytes": 1, "hash": f"s{n}"}
                        await client.call_tool("record_sync", args)
                    else:
                        await anyio.to_thread.run_sync(lambda: sync.update_sync("orders", n, 1, f"o{n}"))
                    done = time.perf_counter()
                    with anyio.fail_after(10):
                        await arrived.wait()
                    figures[side].append((time.perf_counter() - done) * 1000)
                    await anyio.sleep(0.05)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("MCP_STATE_TEST_POSTGRES"))
    parser.add_argument("--writes", type=int, default=50)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # resources/subscribe is deprecated from 2026-07-28, still served
    if not args.pg:
        sys.exit("pass --pg URL or set MCP_STATE_TEST_POSTGRES")
    os.environ["MCP_STATE_TEST_POSTGRES"] = args.pg
    with throwaway_database("mcp_bench_subs") as url:
        figures = anyio.run(measure, url, args.writes)
    print(f"ms from the commit to the subscriber's notification, {args.writes} writes each:")
    for side, values in figures.items():
        print(f"  {side:16} {min(values):7.2f} / {statistics.median(values):7.2f} / {max(values):7.2f}")


if __name__ == "__main__":
    main()
