"""Fault suite: two servers and the CLI on one database file, as real processes.

DuckDB lets one process at a time open a file read-write. Two ``mcp-state serve`` processes (one
over HTTP, one over stdio) keep the file open and let go when another process asks for it
(``mcp_state.sharing``), and share it with the CLI:

1. While a process that does not take part holds the file (a bare DuckDB connection), a call
   through each server and a CLI run all fail after the bounded wait, and not later, with the
   clear error naming that process ("held by another process (PID n)").
2. Then both servers' clients and the CLI work at once, taking turns with the file: every
   operation completes within the bounded wait and none fails for the lock. Nothing crashes,
   and the final state holds exactly what was acknowledged.

"Within the bounded wait" allows the lock wait plus a scheduling slack smaller than a second
wait: an operation that waits twice for the file is over the bound.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fault_support import HOST, RawStdio, ServeProcess, http_client, make_tokens, mcp_error_in, query, serving
from mcp import MCPError
from server_support import seeded_copy

pytestmark = pytest.mark.slow

HELPER = Path(__file__).parent / "helpers" / "state_proc.py"
LOCK_WAIT = 2.5  # MCP_STATE_LOCK_TIMEOUT for every process
SLACK = 2.4  # a busy machine's scheduling on top of one wait: less than a second wait
BOUND = LOCK_WAIT + SLACK
CLI_START = 6.0  # a CLI run also starts a Python interpreter
BURSTS = 8  # per server: a few calls in a row, then a pause
CLI_RUNS = 6
HELD_BY = re.compile(r"held by another process \(PID (\d+)\)")


@dataclass
class Outcomes:
    ok: int = 0
    locked: list[int] = field(default_factory=list)  # the holder PIDs named
    unexpected: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def timed(self, started: float, bound: float) -> None:
        took = time.monotonic() - started
        self.slowest = max(self.slowest, took)
        if took > bound:
            self.unexpected.append(f"took {took:.1f}s, over the {bound:.1f}s bound")

    def failed(self, message: str) -> None:
        held = HELD_BY.search(message)
        if held is None:
            self.unexpected.append(message[:500])
        else:
            self.locked.append(int(held.group(1)))


def burst_calls(table: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("record_sync", {"table_id": table, "rows": n, "file_size_bytes": n, "hash": f"{table}{n}"}),
        ("get_sync_history", {"table_id": table, "limit": 1}),
    ]


def pause(burst: int) -> float:
    return 0.4 + 0.2 * (burst % 3)


# -- the HTTP server: an SDK client per burst ------------------------------------------------------
async def open_session(stack: AsyncExitStack, url: str, token: str, outcomes: Outcomes) -> Any:
    """A client session, or None when its opening request could not reach the file."""
    started = time.monotonic()
    try:
        return await stack.enter_async_context(http_client(url, token, read_timeout=4 * BOUND))
    except Exception as exc:  # the SDK wraps a failed handshake in exception groups
        error = mcp_error_in(exc)
        if error is None:
            raise
        outcomes.failed(str(error))
        return None
    finally:
        outcomes.timed(started, BOUND)


async def http_bursts(server: ServeProcess, token: str, outcomes: Outcomes, synced: list[int]) -> None:
    n = 0
    for burst in range(BURSTS):
        async with AsyncExitStack() as stack:
            client = await open_session(stack, server.url, token, outcomes)
            for _ in range(3 if client is not None else 0):
                n += 1
                for tool, args in burst_calls("a", n):
                    started = time.monotonic()
                    try:
                        result = await client.call_tool(tool, args)
                    except MCPError as exc:  # this request's token check could not reach the file
                        outcomes.failed(str(exc))
                    else:
                        if result.is_error:
                            outcomes.failed(result.content[0].text)
                        else:
                            outcomes.ok += 1
                            synced += [n] if tool == "record_sync" else []
                    outcomes.timed(started, BOUND)
        await anyio.sleep(pause(burst))


# -- the stdio server: one JSON-RPC call at a time ---------------------------------------------
def stdio_call(raw: RawStdio, tool: str, args: dict[str, Any], outcomes: Outcomes) -> bool:
    started = time.monotonic()
    sent = raw.call_tool(tool, args)
    answer = raw.responses.get(timeout=4 * BOUND)
    outcomes.timed(started, BOUND)
    assert answer is not None and answer["id"] == sent, answer
    result = answer["result"]
    if result.get("isError"):
        outcomes.failed(result["content"][0]["text"])
        return False
    outcomes.ok += 1
    return True


def stdio_bursts(raw: RawStdio, outcomes: Outcomes, synced: list[int]) -> None:
    n = 0
    for burst in range(BURSTS):
        for _ in range(3):
            n += 1
            for tool, args in burst_calls("b", n):
                if stdio_call(raw, tool, args, outcomes) and tool == "record_sync":
                    synced.append(n)
        time.sleep(pause(burst))


# -- the CLI -------------------------------------------------------------------------------------
def create_token_with_cli(db_path: Path, actor: str, outcomes: Outcomes, pids: list[int]) -> bool:
    """``mcp-state token create``; True when it created the token."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_state",
            "token",
            "create",
            "--actor",
            actor,
            "--scope",
            "read",
            "--db",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MCP_STATE_LOCK_TIMEOUT": str(LOCK_WAIT)},
    )
    pids.append(proc.pid)
    try:
        token, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    outcomes.timed(started, BOUND + CLI_START)
    if proc.returncode == 0 and token.startswith("mcps_"):  # the token itself is never shown
        outcomes.ok += 1
        return True
    if proc.returncode == 1:
        outcomes.failed(stderr)
    else:
        outcomes.unexpected.append(f"exit {proc.returncode}: {stderr[-500:]}")
    return False


def cli_runs(db_path: Path, outcomes: Outcomes, created: list[str], pids: list[int]) -> None:
    for run in range(CLI_RUNS):
        if create_token_with_cli(db_path, f"cli-{run}", outcomes, pids):
            created.append(f"cli-{run}")
        time.sleep(0.3)


# -- the test ------------------------------------------------------------------------------------
def each_blocked_by_a_holder(db_path: Path, http: ServeProcess, token: str, raw: RawStdio) -> None:
    """While another process holds the file: a call through each server and a CLI run fail clearly."""
    holder = subprocess.Popen(
        [sys.executable, str(HELPER), "hold", str(db_path), "stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    outcomes = {"http": Outcomes(), "stdio": Outcomes(), "cli": Outcomes()}
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        side = [
            threading.Thread(
                target=create_token_with_cli, args=(db_path, "cli-blocked", outcomes["cli"], [])
            ),
            threading.Thread(target=stdio_call, args=(raw, *burst_calls("b", 0)[0], outcomes["stdio"])),
        ]
        for thread in side:
            thread.start()

        async def http_call() -> None:
            # Tokens are checked in memory (the session opens without the file); the call that
            # needs the file waits for it, then fails clearly naming the holder.
            async with AsyncExitStack() as stack:
                client = await open_session(stack, http.url, token, outcomes["http"])
                assert client is not None, "a session needs no database file"
                (tool, args), *_ = burst_calls("b", 0)
                started = time.monotonic()
                result = await client.call_tool(tool, args)
                assert result.is_error, "wrote to a held file"
                outcomes["http"].failed(result.content[0].text)
                outcomes["http"].timed(started, BOUND)

        anyio.run(http_call)
        for thread in side:
            thread.join(timeout=60)
    finally:
        holder.communicate("release\n", timeout=30)
    for name, out in outcomes.items():
        assert out.unexpected == [] and out.locked == [holder.pid], (name, out)
        assert out.slowest >= LOCK_WAIT, f"{name} gave up before the {LOCK_WAIT}s wait: {out}"
    assert query(db_path, "SELECT count(*) FROM api_tokens WHERE actor = 'cli-blocked'") == [(0,)]
    assert query(db_path, "SELECT count(*) FROM sync_history WHERE table_id = 'b'") == [(0,)]


def test_two_servers_and_the_cli_share_one_file(tmp_path: Path) -> None:
    db_path = seeded_copy(tmp_path)[0]
    token = make_tokens(db_path, {"a": "write"})["a"]
    env = {"MCP_STATE_LOCK_TIMEOUT": str(LOCK_WAIT)}
    logs = tmp_path / "logs"
    outcomes = {"http server": Outcomes(), "stdio server": Outcomes(), "cli": Outcomes()}
    synced: dict[str, list[int]] = {"a": [], "b": []}
    cli_created: list[str] = []
    cli_pids: list[int] = []

    with (
        serving(db_path, "http", logs, **env) as http,
        serving(db_path, "stdio", logs, **env, MCP_STATE_ACTOR="b") as stdio,
    ):
        raw = RawStdio(stdio)
        raw.initialize()
        each_blocked_by_a_holder(db_path, http, token, raw)

        side = [
            threading.Thread(target=cli_runs, args=(db_path, outcomes["cli"], cli_created, cli_pids)),
            threading.Thread(target=stdio_bursts, args=(raw, outcomes["stdio server"], synced["b"])),
        ]
        for thread in side:
            thread.start()
        try:

            async def main() -> None:
                with anyio.fail_after(120):
                    await http_bursts(http, token, outcomes["http server"], synced["a"])

            anyio.run(main)
        finally:
            for thread in side:
                thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in side)
        # Nothing crashed: both servers still answer, and neither logged a traceback.
        assert http.popen.poll() is None and stdio.popen.poll() is None, (
            http.log()[-2000:] + stdio.log()[-2000:]
        )
        assert httpx2.get(f"http://{HOST}:{http.port}/healthz", timeout=10).status_code == 200
        assert stdio_call(raw, "get_sync_state", {"table_id": "orders"}, Outcomes())
        ours = {http.pid, stdio.pid, *cli_pids}
        logged = http.log() + stdio.log()
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged[-3000:]

    for name, out in outcomes.items():
        assert out.unexpected == [], (name, out.unexpected)
        assert out.locked == [], f"{name}: refused for the lock by {set(out.locked)} (ours: {ours})"
        assert out.ok > 0, f"the {name} never got the file: {out}"

    # The final state: exactly what was acknowledged, every acknowledged write audited once.
    for actor in ("a", "b"):
        history = query(db_path, "SELECT rows FROM sync_history WHERE table_id = ? ORDER BY rows", [actor])
        assert [row[0] for row in history] == sorted(synced[actor]), (
            f"{actor}: acknowledged syncs and history differ"
        )
        audited = query(
            db_path,
            "SELECT count(*) FROM audit_log WHERE user_id = ? AND action = 'record_sync' AND result = 'ok'",
            [actor],
        )
        assert audited == [(len(synced[actor]),)]
    created = query(db_path, "SELECT actor FROM api_tokens WHERE actor LIKE 'cli-%' ORDER BY actor")
    assert [row[0] for row in created] == sorted(cli_created)
