"""Shared by the tests/test_faults_*.py modules: real ``mcp-state serve`` processes on 127.0.0.1,
bearer tokens for them, SDK clients over HTTP, a raw JSON-RPC driver for a stdio server, and
read-only looks at a database file a (dead or idle) server left behind.

Every process started here is killed in a ``finally``; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from mcp_state.db import Database
from mcp_state.repositories.tokens import TokenRepository

HOST = "127.0.0.1"
PROTOCOL = "2025-06-18"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def make_tokens(db_path: Path, actors: dict[str, str]) -> dict[str, str]:
    """A bearer token per actor (``{actor: scope}``), created directly in the file; never printed."""
    with Database(db_path, idle_release=None) as db:
        tokens = TokenRepository(db)
        return {actor: tokens.create(actor, scope)[0] for actor, scope in actors.items()}


class ServeProcess:
    """``mcp-state serve`` as a real process; stderr goes to a file so a full pipe never blocks it."""

    def __init__(
        self, db_path: Path, transport: str, log_dir: Path, *, flags: tuple[str, ...] = (), **env: str
    ) -> None:
        self.transport = transport
        self.port = free_port() if transport == "http" else None
        args = [
            sys.executable,
            "-m",
            "mcp_state",
            "serve",
            "--db",
            str(db_path),
            "--transport",
            transport,
            *flags,
        ]
        if self.port is not None:
            args += ["--host", HOST, "--port", str(self.port)]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(tempfile.mkstemp(prefix=f"serve-{transport}-", suffix=".log", dir=log_dir)[1])
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if transport == "stdio" else subprocess.DEVNULL,
            stdout=subprocess.PIPE if transport == "stdio" else subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "MCP_STATE_ACTOR": "fault-suite", **env},
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until ``/healthz`` answers (HTTP only)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, f"the server exited early: {self.log()[-2000:]}"
            try:
                if httpx2.get(f"http://{HOST}:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer /healthz within {timeout}s: {self.log()[-2000:]}")

    def kill(self) -> None:
        """``kill -9`` and reap; safe to call twice. Output already in the pipe stays readable."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


@contextmanager
def serving(db_path: Path, transport: str, log_dir: Path, **env: str) -> Iterator[ServeProcess]:
    server = ServeProcess(db_path, transport, log_dir, **env)
    try:
        if transport == "http":
            server.wait_healthy()
        yield server
    finally:
        server.close()


@asynccontextmanager
async def http_client(url: str, token: str, read_timeout: float = 60) -> AsyncIterator[Client]:
    """An SDK client over streamable HTTP carrying a bearer token (legacy handshake)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=read_timeout) as http,
        Client(
            streamable_http_client(url, http_client=http), mode="legacy", read_timeout_seconds=read_timeout
        ) as client,
    ):
        yield client


def mcp_error_in(exc: BaseException) -> MCPError | None:
    """The MCP error inside ``exc`` (the SDK raises one from a failed handshake in exception groups)."""
    if isinstance(exc, MCPError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = mcp_error_in(inner)
        if found is not None:
            return found
    return None


class RawStdio:
    """JSON-RPC over a stdio server's pipes, without the SDK: requests can be pipelined, and a
    killed server simply stops answering (responses arrive on a queue, so every read has a timeout)."""

    def __init__(self, server: ServeProcess) -> None:
        assert server.popen.stdin is not None and server.popen.stdout is not None
        self.server = server
        self.responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.server.popen.stdout
        assert stdout is not None
        try:
            for line in stdout:
                if line.strip():
                    self.responses.put(json.loads(line))
        except (OSError, ValueError):
            pass
        self.responses.put(None)  # end of stream: the server is gone

    def send(self, message: dict[str, Any]) -> bool:
        """Write one message; False when the server is gone."""
        stdin = self.server.popen.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def request(self, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def call_tool(self, name: str, arguments: dict[str, Any]) -> int:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def initialize(self, timeout: float = 60) -> None:
        sent = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "faults", "version": "1"},
            },
        )
        answer = self.responses.get(timeout=timeout)
        assert answer is not None and answer.get("id") == sent and "result" in answer, answer
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def snapshot(db_path: Path, into: Path) -> Path:
    """A copy of a database file and its write-ahead log, to inspect without replaying the original's log."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / db_path.name
    for suffix in ("", ".wal"):
        source = Path(str(db_path) + suffix)
        if source.exists():
            shutil.copyfile(source, Path(str(target) + suffix))
    return target


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of one query on a file no other process holds."""
    conn = duckdb.connect(str(db_path))
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()
