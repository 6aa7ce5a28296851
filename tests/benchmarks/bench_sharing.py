"""One state file, many clients: the cost of a pause, and two clients on one file.

On a state file with ``--rows`` audit rows (1M: about 160 MB), through real ``mcp-state
serve`` processes over stdio and streamable HTTP:

1. Pause: the first call after a pause of several lengths against calls back to back (0.2 s
   apart), for the server as it is (keeps the file open; lets go when asked) and, measured in
   the same run on a copy of the file, the server as it was (lets go after 2 s idle:
   ``MCP_STATE_IDLE_RELEASE=2``). The calls alternate between the servers after each pause;
   the call is a read of the 1M-row audit log in one round, of a small table in the next.
   The servers' first calls after a pause are ``--settle`` seconds apart (default 1): timed
   right after a "2 s release" server reopened its file, a server's first call also pays for
   that other process's reopening on a 2-CPU machine (with no gap, the HTTP server, which
   always came right after one, measured 1.7-4.2x; with 1 s, 0.95x). Target: first call
   after a pause at most 1.5x calls back to back (p50).
2. Two clients: two servers on one file (two stdio; then HTTP and stdio), each making one
   call every 1-2 s (writes and reads alternately), while ``mcp-state query`` and
   ``mcp-state token list`` run now and then. Per client: calls, slow calls ("waits": over
   3x its own p50), errors, locked errors, p50 and p95; then every acknowledged write is
   checked in the file. Targets: 0 locked errors, p95 at most 5x p50.

    python tests/benchmarks/bench_sharing.py [--quick] [--rows 1000000] [--pauses 5 10 30] [--rounds 6]
        [--settle 1] [--pause-only | --two-only] [--seconds 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import anyio.from_thread  # noqa: E402
from common import Figure, Stats, print_table, write_report  # noqa: E402
from fault_support import RawStdio, ServeProcess, http_client, make_tokens, query  # noqa: E402

from mcp_state.db import connect  # noqa: E402
from mcp_state.repositories import SyncStateRepository  # noqa: E402

READ = ("query_audit_log", {"limit": 5})
# The calls of the pause experiment: one over the 1M-row audit log, one over a small table.
KINDS = {"query_audit_log": READ, "get_sync_history": ("get_sync_history", {"table_id": "orders"})}


def build(path: Path, rows: int) -> None:
    """A state file with ``rows`` audit entries and a synced table."""
    conn = connect(path)
    try:
        conn.execute(
            "INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms) "
            "SELECT 'a' || i, TIMESTAMP '2026-01-01' + to_seconds(i), 'user' || (i % 50), "
            "'action' || (i % 20), 'table' || (i % 1000), '{\"n\": 1}', 'ok', i % 100 FROM range(?) t(i)",
            [rows],
        )
        for n in range(20):
            SyncStateRepository(conn).update_sync("orders", rows=n, file_size_bytes=n, hash=str(n))
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


class Client:
    """A synchronous MCP client of one serve process: ``call(tool, args)`` -> (seconds, error text)."""

    def __init__(self, server: ServeProcess, stack: ExitStack, token: str | None = None) -> None:
        self.server = server
        if server.transport == "stdio":
            self.raw = RawStdio(server)
            self.raw.initialize()
        else:
            server.wait_healthy()
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            assert token is not None
            self.portal = portal
            self.sdk = stack.enter_context(portal.wrap_async_context_manager(http_client(server.url, token)))

    def call(self, tool: str, args: dict[str, Any]) -> tuple[float, str | None]:
        started = time.perf_counter()
        if self.server.transport == "stdio":
            sent = self.raw.call_tool(tool, args)
            answer = self.raw.responses.get(timeout=120)
            took = time.perf_counter() - started
            assert answer is not None and answer["id"] == sent, answer
            result = answer["result"]
            return took, result["content"][0]["text"] if result.get("isError") else None
        try:
            outcome = self.portal.call(self.sdk.call_tool, tool, args)
        except Exception as exc:  # an MCP error from the token check
            return time.perf_counter() - started, str(exc)
        took = time.perf_counter() - started
        return took, outcome.content[0].text if outcome.is_error else None


@contextmanager
def clients(
    specs: dict[str, tuple[Path, str, dict[str, str]]], logs: Path, tokens: dict[Path, str]
) -> Iterator[dict[str, Client]]:
    """A server process and its client per name: ``{name: (db, transport, env)}``."""
    with ExitStack() as stack:
        made = {}
        for name, (db, transport, env) in specs.items():
            server = ServeProcess(db, transport, logs, **env)
            stack.callback(server.close)
            made[name] = Client(server, stack, tokens.get(db))
        yield made


# -- 1. the pause experiment ------------------------------------------------------------------
def pause_experiment(
    work: Path, template: Path, pauses: list[float], rounds: int, burst: int, logs: Path, settle: float
) -> tuple[list[Figure], dict[str, Any]]:
    specs, tokens = {}, {}
    for transport in ("stdio", "http"):
        for side, env in (("keeps open", {}), ("2 s release", {"MCP_STATE_IDLE_RELEASE": "2"})):
            db = work / f"pause-{transport}-{side.split()[0]}.duckdb"
            shutil.copyfile(template, db)
            if transport == "http":
                tokens[db] = make_tokens(db, {"bench": "read"})["bench"]
            specs[f"{transport}, {side}"] = (db, transport, env)
    # samples[(server, call kind)]: first calls after a pause, by pause length, and calls back to back
    after: dict[tuple[str, str], dict[float, list[float]]] = {}
    b2b: dict[tuple[str, str], list[float]] = {}
    for key in ((name, kind) for name in specs for kind in KINDS):
        after[key], b2b[key] = {p: [] for p in pauses}, []
    with clients(specs, logs, tokens) as made:
        names = list(made)
        for name in names:  # open the files, warm the processes
            for call in [*KINDS.values()] * 2:
                made[name].call(*call)
        for round_no in range(rounds):
            kind = list(KINDS)[round_no % len(KINDS)]
            for pause in pauses:
                time.sleep(pause)
                order = names if round_no % 4 < 2 else names[::-1]
                for i, name in enumerate(order):  # each server's first call after the pause
                    if i:  # the previous server (reopening its file) is done before this one is timed
                        time.sleep(settle)
                    took, error = made[name].call(*KINDS[kind])
                    assert error is None, error
                    after[name, kind][pause].append(took)
                for _ in range(burst):  # then calls back to back, 0.2 s apart
                    time.sleep(0.2)
                    for name in order:
                        took, error = made[name].call(*KINDS[kind])
                        assert error is None, error
                        b2b[name, kind].append(took)
    figures, raw = [], {}
    for (name, kind), by_pause in after.items():
        first, back = Stats([t for ts in by_pause.values() for t in ts]), Stats(b2b[name, kind])
        transport, side = name.split(", ")
        figures.append(
            Figure(
                name=f"{kind} after a pause vs back to back, {transport}, {side} (p50)",
                ours_label="after a pause",
                ours=first.p50 * 1000,
                other_label="back to back",
                other=back.p50 * 1000,
                unit="ms",
                target=1.5 if side == "keeps open" else None,
                ours_spread=first.spread,
                other_spread=back.spread,
                extra={f"p50 after {p:g}s (ms)": Stats(v).p50 * 1000 for p, v in by_pause.items()}
                | {"min after (ms)": min(first.samples) * 1000, "max after (ms)": max(first.samples) * 1000},
                section="sharing",
            )
        )
        raw[f"{name}, {kind}"] = {
            "after_ms": {str(p): [t * 1000 for t in ts] for p, ts in by_pause.items()},
            "b2b_ms": [t * 1000 for t in back.samples],
        }
    return figures, raw


# -- 2. two clients on one file -----------------------------------------------------------------
def client_loop(
    client: Client, table: str, seconds: float, seed: int, out: dict[str, Any], stop: threading.Event
) -> None:
    rng = random.Random(seed)
    times: list[float] = []
    errors: list[str] = []
    acked: list[int] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and not stop.is_set():
        n += 1
        if n % 2:
            args = {"table_id": table, "rows": n, "file_size_bytes": n, "hash": f"{table}{n}"}
            took, error = client.call("record_sync", args)
            if error is None:
                acked.append(n)
        else:
            took, error = client.call(*(READ if n % 4 == 0 else ("get_sync_history", {"table_id": table})))
        times.append(took)
        if error is not None:
            errors.append(error[:300])
        time.sleep(rng.uniform(1.0, 2.0))
    out.update(times=times, errors=errors, acked=acked)


def cli_loop(db: Path, seconds: float, out: dict[str, Any], stop: threading.Event) -> None:
    runs: list[tuple[str, float, int, str]] = []
    commands = [
        ["query", "SELECT action, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY n DESC LIMIT 3"],
        ["token", "list"],
    ]
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline - 3 and not stop.is_set():
        time.sleep(2.5)
        command = commands[i % 2]
        i += 1
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mcp_state", *command, "--db", str(db)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        runs.append((command[0], time.perf_counter() - started, done.returncode, done.stderr[-300:]))
    out.update(runs=runs)


def two_clients(
    work: Path, template: Path, transports: tuple[str, str], seconds: float, logs: Path
) -> tuple[list[Figure], dict[str, Any]]:
    db = work / f"two-{'-'.join(transports)}.duckdb"
    shutil.copyfile(template, db)
    tokens = {db: make_tokens(db, {"bench": "write"})["bench"]} if "http" in transports else {}
    specs = {
        f"{t} client {i + 1}": (db, t, {"MCP_STATE_ACTOR": f"c{i + 1}"}) for i, t in enumerate(transports)
    }
    results: dict[str, dict[str, Any]] = {name: {} for name in specs}
    cli: dict[str, Any] = {}
    stop = threading.Event()
    with clients(specs, logs, tokens) as made:
        threads = [
            threading.Thread(target=client_loop, args=(made[name], f"t{i}", seconds, i, results[name], stop))
            for i, name in enumerate(made)
        ]
        threads.append(threading.Thread(target=cli_loop, args=(db, seconds, cli, stop)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    figures, raw = [], {"cli": cli["runs"]}
    for i, (name, out) in enumerate(results.items()):
        stats = Stats(out["times"])
        history = query(db, "SELECT rows FROM sync_history WHERE table_id = ? ORDER BY rows", [f"t{i}"])
        missing = sorted(set(out["acked"]) - {row[0] for row in history})
        locked = [e for e in out["errors"] if "locked" in e or "held by another process" in e]
        figures.append(
            Figure(
                name=f"two clients on one file ({' + '.join(transports)}): {name}, p95 vs p50",
                ours_label="p95",
                ours=stats.p95 * 1000,
                other_label="p50",
                other=stats.p50 * 1000,
                unit="ms",
                target=5.0,
                extra={
                    "calls": len(out["times"]),
                    "waits (over 3x p50)": sum(t > 3 * stats.p50 for t in out["times"]),
                    "errors": len(out["errors"]),
                    "locked errors": len(locked),
                    "acknowledged writes missing": len(missing),
                    "max (ms)": max(out["times"]) * 1000,
                },
                section="sharing",
            )
        )
        raw[name] = {"ms": [t * 1000 for t in out["times"]], "errors": out["errors"], "missing": missing}
    cli_runs = cli["runs"]
    failed = [run for run in cli_runs if run[2] != 0]
    for command in ("query", "token"):
        took = sorted(r[1] for r in cli_runs if r[0] == command)
        if took:
            print(
                f"mcp-state {command} during the two clients ({' + '.join(transports)}): {len(took)} runs, "
                f"min {took[0]:.2f} s, median {Stats(took).p50:.2f} s, max {took[-1]:.2f} s",
                flush=True,
            )
    figures.append(
        Figure(
            name=f"CLI runs during the two clients ({' + '.join(transports)}): slowest vs median",
            ours_label="slowest",
            ours=max((r[1] for r in cli_runs), default=0) * 1000,
            other_label="median",
            other=Stats([r[1] for r in cli_runs]).p50 * 1000 if cli_runs else 0,
            unit="ms",
            target=None,
            extra={"runs": len(cli_runs), "failed": len(failed)},
            section="sharing",
        )
    )
    return figures, raw


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short pauses, few rounds, 15 s of two clients")
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows in the file (default 1M)")
    parser.add_argument("--pauses", type=float, nargs="+", help="pause lengths in seconds (default: 5 10 30)")
    parser.add_argument("--rounds", type=int, help="rounds of the pause experiment (default: 6)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds between two servers' first calls after a pause"
    )
    parser.add_argument("--pause-only", action="store_true", help="skip the two-client experiment")
    parser.add_argument("--two-only", action="store_true", help="skip the pause experiment")
    parser.add_argument(
        "--seconds", type=float, help="length of each two-client run (default: 60; --quick 15)"
    )
    parser.add_argument("--json", type=Path, help="write the report here (default: results/sharing.json)")
    args = parser.parse_args(argv)
    pauses, rounds, burst, seconds = (
        ([3.0, 5.0], 2, 3, 15.0) if args.quick else ([5.0, 10.0, 30.0], 6, 4, 60.0)
    )
    pauses, rounds = args.pauses or pauses, args.rounds or rounds
    seconds = args.seconds or seconds
    os.environ.setdefault("MCP_STATE_LOCK_TIMEOUT", "10")
    with tempfile.TemporaryDirectory(prefix="bench-sharing-") as tmp:
        work = Path(tmp)
        template = work / "template.duckdb"
        started = time.perf_counter()
        build(template, args.rows)
        size = template.stat().st_size / 2**20
        print(
            f"{args.rows:,} audit rows: {size:.0f} MB, built in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        figures: list[Figure] = []
        raw: dict[str, Any] = {}
        if not args.two_only:
            figures, raw = pause_experiment(work, template, pauses, rounds, burst, work / "logs", args.settle)
            print_table(figures)
        for transports in () if args.pause_only else (("stdio", "stdio"), ("http", "stdio")):
            more, raw[" + ".join(transports)] = two_clients(
                work, template, transports, seconds, work / "logs"
            )
            print_table(more)
            figures += more
    meta = {
        "rows": args.rows,
        "file_mb": round(size),
        "pauses": pauses,
        "rounds": rounds,
        "quick": args.quick,
        "settle": args.settle,
        "two_client_seconds": seconds,
    }
    print(f"report: {write_report('sharing', figures, {**meta, 'raw': raw}, path=args.json)}")
    return figures


if __name__ == "__main__":
    main()
