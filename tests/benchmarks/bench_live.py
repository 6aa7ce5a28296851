"""What live state adds to every threaded tool call: the progress ticker and the change notice.

    python tests/benchmarks/bench_live.py [--calls 2000] [--rounds 7]

Each round times ``calls`` iterations of the wrapper's additions (``Live.ticking`` around the
call, ``Live.committed`` after a write of ``record_sync``, with nobody subscribed) against the
same loop without them, alternating the two sides, and prints the added microseconds per call
(min / median / max over the rounds). Not a test: pytest never collects this folder.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel

from mcp_state.server.live import Live, affected


async def main(calls: int, rounds: int) -> None:
    live = Live()

    async def report_progress(*args: Any) -> None:
        return None

    ctx: Any = SimpleNamespace(
        request_context=SimpleNamespace(session=SimpleNamespace(report_progress=report_progress))
    )
    uris = affected("record_sync", "sync", {"table_id": "orders"})
    added = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await anyio.lowlevel.checkpoint()
        bare = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(calls):
            async with live.ticking(ctx, "record_sync"):
                await anyio.lowlevel.checkpoint()
            await live.committed(uris)
        added.append((time.perf_counter() - started - bare) / calls * 1e6)
    print(
        f"live state adds per call: min {min(added):.1f} us, median {statistics.median(added):.1f} us, "
        f"max {max(added):.1f} us ({rounds} rounds of {calls} calls)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    anyio.run(main, args.calls, args.rounds)
