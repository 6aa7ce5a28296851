"""``mcp-state serve`` as a real subprocess over stdio, driven by the SDK client; and what it says
when started from a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from server_support import MODES, seeded_copy

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # real processes


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def serve(db_path: Path, *args: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_state", "serve", "--db", str(db_path), *args],
        env={"MCP_STATE_ACTOR": "claude-desktop", **env},
    )


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_subprocess(tmp_path: Path, mode: str) -> None:
    db_path, _ = seeded_copy(tmp_path)
    async with Client(serve(db_path), mode=mode) as client:
        assert len((await client.list_tools()).tools) == 47
        state = await client.call_tool("get_sync_state", {"table_id": "orders"})
        assert state.structured_content["rows"] == 120
        recorded = await client.call_tool(
            "record_sync", {"table_id": "orders", "rows": 5, "file_size_bytes": 5, "hash": "s"}
        )
        assert not recorded.is_error
        missing = await client.call_tool("get_sync_state", {"table_id": "nope"})
        assert missing.is_error and "list_sync_states" in missing.content[0].text
        entry = (await client.call_tool("query_audit_log", {"limit": 1})).structured_content["items"][0]
        assert (entry["user_id"], entry["action"], entry["resource"]) == (
            "claude-desktop",
            "record_sync",
            "orders",
        )
        assert "sync_state" in (await client.read_resource("state://schema")).contents[0].text
        assert (await client.get_prompt("triage_sync_failures")).messages


async def test_stdio_options(tmp_path: Path) -> None:
    db_path, _ = seeded_copy(tmp_path)
    async with Client(serve(db_path, "--read-only", "--toolsets", "sync,audit", "--actor", "ops")) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {
            "get_sync_state",
            "list_sync_states",
            "get_sync_history",
            "summarize_sync_failures",
            "get_sync_settings",
            "query_audit_log",
        }


def test_terminal_start_explains_itself(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh.duckdb"
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_state", "serve", "--create", "--db", str(db_path), "--actor", "me"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(terminal)
    try:
        deadline = time.monotonic() + 30
        said = b""
        while b"Ctrl-C" not in said and time.monotonic() < deadline and proc.poll() is None:
            said += os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(controller)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    text = said.decode()
    assert "over stdio as actor 'me'" in text and str(db_path) in text and "47 tools" in text
    assert (
        f"claude mcp add mcp-state -- {sys.executable} -m mcp_state serve --db {db_path} --actor me" in text
    )
    assert "npx -y @modelcontextprotocol/inspector@2.12.0 " in text and "typing here does nothing" in text


def test_piped_start_writes_one_line_naming_the_file(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh.duckdb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_state",
            "serve",
            "--create",
            "--db",
            str(db_path),
            "--toolsets",
            "sync,sql",
        ],
        stdin=subprocess.DEVNULL,
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == b""
    [line] = done.stderr.decode().splitlines()  # a client's log shows which file is served, how
    assert line.startswith("mcp-state ") and f"serving {db_path} (" in line
    assert "tools: sync, sql) over stdio" in line
