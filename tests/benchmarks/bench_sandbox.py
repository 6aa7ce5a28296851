"""The SQL sandbox's limits, measured: memory and time of statements that explode while DuckDB
plans or runs them (issue 11, finding 3) and of fuzzed ones, with the server answering meanwhile.

For each statement: how long the call took, how it ended, how much the server process grew
(``VmHWM`` from ``/proc/self/status``, this process being the server), the peak resident size of
the worker processes (``VmRSS`` of this process's children in ``/proc``, sampled every 5 ms), and
the slowest answer to ``SELECT count(*) FROM users`` sent every 100 ms from another thread.

    python tests/benchmarks/bench_sandbox.py [--timeout 5] [--fuzz 12] [--seed 11]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import threading
import time
from pathlib import Path

from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.engine import DEFAULT_MEMORY_CEILING

ISSUE_INPUTS = [
    "SELECT variant_bytes_to_variant('\\x01\\x00\\x00\\x7f\\x80\\x03\\x03\\x80\\x02\\x03\\x00\\x02\\x7f'::BLOB)::VARCHAR",
    "SELECT len(range(100000000))",
    "SELECT length(repeat('a', 2000000000))",
    "EXPLAIN:SELECT len(range(3000000))",
    "SELECT json(repeat('[', 100000) || repeat(']', 100000))",
    "SELECT INTERVAL 2147483647 MONTH",
]

_SIZES = [10**6, 10**7, 10**8, 10**9, 2 * 10**9]
_PARTS = [
    "len(range({n}))",
    "length(repeat('ab', {n}))",
    "list_sum(range({n}))",
    "len(list_value(range({n}), range({n})))",
    "length(string_agg(repeat('x', {n} // 1000), ''))",
    "len(string_split(repeat('a,', {n}), ','))",
    "md5(repeat('x', {n}))",
    "len(list_transform(range({n}), x -> x * 2))",
    "len(array_concat(range({n}), range({n})))",
    "length(lpad('', {n}, 'xy'))",
]


def fuzzed(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        part = rng.choice(_PARTS).format(n=rng.choice(_SIZES))
        if rng.random() < 0.4:
            part = f"{part} + {rng.choice(_PARTS).format(n=rng.choice(_SIZES))}"
        source = " FROM range(3)" if rng.random() < 0.3 else ""
        out.append(f"SELECT {part} AS v{source}")
    return out


def _kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--fuzz", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    db = hardened_database(folder / "state.duckdb", idle_release=None)
    engine = SqlEngine(db, timeout=args.timeout)
    engine.query("SELECT count(*) FROM users")
    idle_kb = _kb("self", "VmRSS")
    print(
        f"time limit {args.timeout:g} s; memory ceiling {DEFAULT_MEMORY_CEILING / 2**30:.2f} GiB over the worker's idle size"
    )
    print(f"server idle VmRSS {idle_kb / 1024:.0f} MiB\n")
    header = f"{'statement':<72} {'seconds':>7} {'outcome':<9} {'server +MiB':>11} {'worker MiB':>10} {'other call s':>12}"
    print(header)
    print("-" * len(header))
    worst = {"seconds": 0.0, "server": 0, "worker": 0, "other": 0.0}
    for sql in ISSUE_INPUTS + fuzzed(args.fuzz, args.seed):
        peak = {"worker": 0, "other": 0.0}
        stop = threading.Event()

        def sample(peak=peak, stop=stop) -> None:
            while not stop.is_set():
                peak["worker"] = max([peak["worker"], *(_kb(pid, "VmRSS") for pid in _children())])
                time.sleep(0.005)

        def other(peak=peak, stop=stop) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(Exception):
                    engine.query("SELECT count(*) FROM users")
                peak["other"] = max(peak["other"], time.perf_counter() - t0)
                time.sleep(0.1)

        threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=other, daemon=True)]
        for t in threads:
            t.start()
        before = _kb("self", "VmHWM")
        started = time.perf_counter()
        try:
            if sql.startswith("EXPLAIN:"):
                engine.explain(sql.removeprefix("EXPLAIN:"))
            else:
                engine.query(sql)
            outcome = "answered"
        except Exception as exc:
            outcome = getattr(exc, "kind", type(exc).__name__)
            if "memory" in str(exc):
                outcome = "memory"
        seconds = time.perf_counter() - started
        stop.set()
        for t in threads:
            t.join()
        grown = max(0, _kb("self", "VmHWM") - before) // 1024
        shown = sql if len(sql) <= 72 else sql[:69] + "..."
        print(
            f"{shown:<72} {seconds:>7.2f} {outcome:<9} {grown:>11} {peak['worker'] // 1024:>10} {peak['other']:>12.2f}"
        )
        worst = {
            "seconds": max(worst["seconds"], seconds),
            "server": max(worst["server"], grown),
            "worker": max(worst["worker"], peak["worker"] // 1024),
            "other": max(worst["other"], peak["other"]),
        }
    print(
        f"\nworst: {worst['seconds']:.2f} s per call (limit {args.timeout:g} s + 1 s), server grew {worst['server']} MiB, "
        f"worker peak {worst['worker']} MiB, slowest other call {worst['other']:.2f} s"
    )
    engine.close()
    db.close()


if __name__ == "__main__":
    main()
