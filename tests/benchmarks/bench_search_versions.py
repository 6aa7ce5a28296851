"""search_knowledge before and after a change, side by side: two source trees' servers over stdio.

The states of ``bench_agent.py`` (1,000 and ``--large`` rows per table) are generated once by
the *before* tree (so at its schema version); the current tree's servers run on copies, which
they migrate when they open them (the migration's time at the large size is printed). Four
servers (before/after x small/large) answer the same search calls in a shuffled order each
round, so a noisy neighbour slows all alike. Per call: each side's p50, and the large/small
ratio of each tree (issue 9's target: at most 3x), for every run; then min/median/max of the
ratios over ``--runs``.

    git worktree add /tmp/before main    # or: git archive main | tar -x -C /tmp/before
    python tests/benchmarks/bench_search_versions.py --before /tmp/before --calls 30 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common

from common import alternate_async

from mcp_state.db import Database

HERE = Path(__file__).resolve().parents[2]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("two words", {"query": "revenue mrr"}),
    ("one word", {"query": "revenue"}),
    ("two words, status (none kept)", {"query": "revenue mrr", "status": ["approved"]}),
    ("two words, status (half kept)", {"query": "revenue mrr", "status": ["archived"]}),
    ("one word, tag", {"query": "revenue", "tag": "t4"}),
]
_GENERATE = """
import sys
from pathlib import Path
sys.path[:0] = ["tests/benchmarks", "tests"]
from bench_agent import generate
generate(Path(sys.argv[1]), int(sys.argv[2]))
"""


def generate(tree: Path, path: Path, size: int) -> None:
    """A bench_agent state of ``size`` rows, made by ``tree``'s own code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(
        [sys.executable, "-c", _GENERATE, str(path), str(size)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )


def server(tree: Path, path: Path) -> StdioServerParameters:
    """``tree``'s server on ``path`` (run in ``tree``: ``python -m`` puts the working directory first)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MCP_STATE_ACTOR": "bench",
        "PYTHONPATH": str(tree),
    }
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_state", "serve", "--db", str(path)], env=env, cwd=tree
    )


async def measure(
    sides: dict[str, StdioServerParameters], calls: int, runs: int
) -> dict[str, list[dict[str, float]]]:
    """Per call label, per run: each side's p50 in ms."""
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in CALLS}
    async with (
        Client(sides["before small"]) as b_small,
        Client(sides["before large"]) as b_large,
        Client(sides["after small"]) as a_small,
        Client(sides["after large"]) as a_large,
    ):
        clients = {
            "before small": b_small,
            "before large": b_large,
            "after small": a_small,
            "after large": a_large,
        }
        for label, args in CALLS:
            for name, client in clients.items():  # the same answer from both trees
                result = await client.call_tool("search_knowledge", args)
                assert not result.is_error, f"{label} on {name}: {result.content}"
            for _ in range(runs):

                def timed(client: Client, args: dict[str, Any] = args):  # type: ignore[no-untyped-def]
                    async def call() -> None:
                        await client.call_tool("search_knowledge", args)

                    return call

                stats = await alternate_async(
                    {name: timed(client) for name, client in clients.items()},
                    repetitions=calls,
                    warmup=2,
                    shuffle=True,
                )
                results[label].append({name: s.p50 * 1000 for name, s in stats.items()})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the version before")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per side and run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the generated states here and reuse them next time")
    args = parser.parse_args(argv)
    before = args.before.resolve()
    with tempfile.TemporaryDirectory(prefix="mcp-state-bench-versions-") as tmp:
        kept = args.keep or Path(tmp)
        kept.mkdir(parents=True, exist_ok=True)
        sides: dict[str, StdioServerParameters] = {}
        for size_name, size in (("small", args.small), ("large", args.large)):
            made, old, new = (
                kept / f"made-{size}.duckdb",
                Path(tmp) / f"before-{size}.duckdb",
                Path(tmp) / f"after-{size}.duckdb",
            )
            if not made.exists():
                started = time.perf_counter()
                generate(before, made, size)
                print(
                    f"generated {size:,} rows per table (before's schema) in {time.perf_counter() - started:.1f} s"
                )
            shutil.copyfile(made, old)
            shutil.copyfile(made, new)
            started = time.perf_counter()
            with Database(new, idle_release=None) as db:
                db.open()  # the current tree's migrations
            print(
                f"migrated the copy of {size:,} to the current schema in {time.perf_counter() - started:.1f} s"
            )
            sides[f"before {size_name}"] = server(before, old)
            sides[f"after {size_name}"] = server(HERE, new)
        results = anyio.run(measure, sides, args.calls, args.runs)
    print(f"\np50 over stdio, ms ({args.calls} calls per side per run; {args.small:,} / {args.large:,} rows)")
    for label, runs in results.items():
        for tree in ("before", "after"):
            ratios = [run[f"{tree} large"] / run[f"{tree} small"] for run in runs]
            small = [run[f"{tree} small"] for run in runs]
            large = [run[f"{tree} large"] for run in runs]
            print(
                f"{label:18} {tree:6} p50 small {_mmm(small)}  large {_mmm(large)}  "
                f"ratio {min(ratios):.2f}x / {statistics.median(ratios):.2f}x / {max(ratios):.2f}x"
            )


def _mmm(values: list[float]) -> str:
    return f"{min(values):6.1f}/{statistics.median(values):6.1f}/{max(values):6.1f}"


if __name__ == "__main__":
    main()
