"""Shared by the tests/test_sql_*.py modules: seed data with canary secrets, a minimal MCP server
carrying the SQL toolset, a full content dump of a database file, and a file-access watch."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio
import duckdb
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_state.db import Database
from mcp_state.gateway import Gateway
from mcp_state.server.tools_sql import register_sql_tools
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.runner import Runner, connect

T = TypeVar("T")

# Every secret the seed stores. None may ever appear in a SQL result or error.
CANARIES = (
    "CANARY-pw-ana-7f3a",
    "CANARY-reset-ana-91c2",
    "CANARY-pw-bo-c0de",
    "CANARY-setup-bo-55aa",
    "CANARY-setup-cy-e1e1",
    "CANARY-pw-di-b0b0",
    "CANARY-code-111111",
    "CANARY-code-222222",
    "CANARY-hash-aaaa",
    "CANARY-hash-bbbb",
)

_SEED = [
    (
        """INSERT INTO users (id, email, name, role, password_hash, setup_token, reset_token, created_at) VALUES
           ('u1', 'ana@example.com', 'Ana', 'admin', 'CANARY-pw-ana-7f3a', NULL, 'CANARY-reset-ana-91c2', '2026-03-01 09:00:00'),
           ('u2', 'bo@example.com', 'Bo', 'analyst', 'CANARY-pw-bo-c0de', 'CANARY-setup-bo-55aa', NULL, '2026-03-02 09:00:00'),
           ('u3', 'cy@example.com', 'Cy', 'viewer', NULL, 'CANARY-setup-cy-e1e1', NULL, '2026-03-03 09:00:00'),
           ('u4', 'di@example.com', 'Di', 'analyst', 'CANARY-pw-di-b0b0', NULL, NULL, '2026-03-04 09:00:00')"""
    ),
    (
        """INSERT INTO pending_codes (code, chat_id, created_at) VALUES
           ('CANARY-code-111111', 1001, '2026-03-20 10:00:00'), ('CANARY-code-222222', 1002, '2026-03-21 10:00:00')"""
    ),
    (
        """INSERT INTO api_tokens (id, actor, scope, token_hash, created_at, revoked_at) VALUES
           ('tok1', 'ana', 'admin', 'CANARY-hash-aaaa', '2026-03-01 00:00:00', NULL),
           ('tok2', 'bo', 'read', 'CANARY-hash-bbbb', '2026-03-02 00:00:00', '2026-03-10 00:00:00')"""
    ),
    (
        """INSERT INTO knowledge_items (id, title, content, category, tags, status, contributors, source_user, audience, created_at) VALUES
           ('k1', 'Revenue definition', 'Revenue is net of refunds.', 'metrics', '["metrics", "finance"]', 'approved', '["u1", "u2"]', 'u2', 'all', '2026-03-05 09:00:00'),
           ('k2', 'Churn', 'Churn is monthly.', 'metrics', '["metrics"]', 'approved', '["u2"]', 'u2', 'all', '2026-03-06 09:00:00'),
           ('k3', 'On-call runbook', 'Page the owner.', 'ops', '["ops", "runbook"]', 'pending', '["u3"]', 'u3', 'ops', '2026-03-07 09:00:00'),
           ('k4', 'Old KPI', 'Retired.', 'metrics', '["metrics", "legacy"]', 'archived', '["u4"]', 'u4', 'all', '2026-03-08 09:00:00')"""
    ),
    (
        """INSERT INTO knowledge_votes (item_id, user_id, vote, voted_at) VALUES
           ('k1', 'u1', 1, '2026-03-20 10:00:00'), ('k1', 'u3', 1, '2026-03-21 11:30:00'),
           ('k1', 'u4', -1, '2026-03-22 09:00:00'), ('k2', 'u1', 1, '2026-03-20 10:30:00'),
           ('k3', 'u2', -1, '2026-03-22 10:00:00')"""
    ),
    (
        """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms) VALUES
           ('a01', '2026-03-20 09:00:00', 'u1', 'approve_knowledge', 'k1', '{"item": "k1"}', 'ok', 12),
           ('a02', '2026-03-20 09:05:00', 'u1', 'approve_knowledge', 'k2', '{"item": "k2"}', 'ok', 10),
           ('a03', '2026-03-20 10:00:00', 'u2', 'vote', 'k1', '{"item": "k1", "vote": 1}', 'ok', 5),
           ('a04', '2026-03-21 11:00:00', 'u2', 'approve_knowledge', 'k3', '{"item": "k3"}', 'error', 7),
           ('a05', '2026-03-21 11:30:00', 'u3', 'vote', 'k1', '{"item": "k1", "vote": 1}', 'ok', 4),
           ('a06', '2026-03-21 12:00:00', 'u1', 'record_sync', 't_orders', '{"table": "t_orders", "rows": 100}', 'ok', 30),
           ('a07', '2026-03-22 08:00:00', 'u1', 'record_sync', 't_events', '{"table": "t_events", "rows": 5}', 'ok', 25),
           ('a08', '2026-03-22 09:00:00', 'u4', 'vote', 'k1', '{"item": "k1", "vote": -1}', 'ok', 6),
           ('a09', '2026-03-22 09:30:00', 'u1', 'approve_knowledge', 'k4', '{"item": "k4"}', 'ok', 9),
           ('a10', '2026-03-22 10:00:00', 'u2', 'vote', 'k3', '{"item": "k3", "vote": -1}', 'ok', 3)"""
    ),
    (
        """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, uncompressed_size_bytes, columns, hash, status, error) VALUES
           ('t_orders', '2026-03-22 06:00:00', 100, 1000, 4000, 7, 'h-o', 'error', 'timeout'),
           ('t_events', '2026-03-22 06:00:00', 5, 50, 200, 3, 'h-e', 'ok', NULL),
           ('t_users', '2026-03-22 06:00:00', 4, 40, 160, 5, 'h-u', 'ok', NULL)"""
    ),
    (
        """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error) VALUES
           ('h1', 't_orders', '2026-03-16 06:00:00', 100, 1200, 'ok', NULL),
           ('h2', 't_orders', '2026-03-17 06:00:00', 0, 3000, 'error', 'timeout'),
           ('h3', 't_orders', '2026-03-18 06:00:00', 0, 3000, 'error', 'timeout'),
           ('h4', 't_events', '2026-03-17 06:00:00', 5, 200, 'ok', NULL),
           ('h5', 't_events', '2026-03-18 06:00:00', 0, 900, 'error', 'auth'),
           ('h6', 't_users', '2026-03-10 06:00:00', 0, 100, 'error', 'old'),
           ('h7', 't_users', '2026-03-12 06:00:00', 0, 100, 'error', 'old'),
           ('h8', 't_users', '2026-03-18 06:00:00', 4, 150, 'ok', NULL)"""
    ),
    (
        """INSERT INTO table_registry (id, name, folder, sync_strategy, primary_key, description, registered_by, registered_at) VALUES
           ('t_orders', 'Orders', 'sales', 'full', 'id', 'Customer orders', 'u1', '2026-03-01 00:00:00'),
           ('t_events', 'Events', 'product', 'incremental', 'event_id', 'Product events', 'u1', '2026-03-01 00:00:00'),
           ('t_users', 'Users', 'core', 'full', 'id', 'App users', 'u2', '2026-03-02 00:00:00')"""
    ),
    (
        """INSERT INTO table_profiles (table_id, profile, profiled_at) VALUES
           ('t_orders', '{"row_count": 100, "columns": ["id", "amount"]}', '2026-03-22 07:00:00')"""
    ),
    (
        """INSERT INTO dataset_permissions (user_id, dataset, access) VALUES
           ('u1', 'sales', 'admin'), ('u2', 'sales', 'read'), ('u2', 'product', 'write')"""
    ),
    ("INSERT INTO telegram_links (user_id, chat_id, linked_at) VALUES ('u1', 555, '2026-03-03 00:00:00')"),
    (
        """INSERT INTO script_registry (id, name, owner, schedule, source, deployed_at, last_run, last_status) VALUES
           ('s1', 'nightly', 'u1', '0 3 * * *', 'print(1)', '2026-03-01 00:00:00', '2026-03-22 03:00:00', 'ok')"""
    ),
    (
        """INSERT INTO user_sync_settings (user_id, dataset, enabled, table_mode, tables, updated_at) VALUES
           ('u1', 'sales', true, 'all', NULL, '2026-03-05 00:00:00'),
           ('u2', 'product', true, 'selected', '["t_events"]', '2026-03-06 00:00:00')"""
    ),
]


def seed(db: Database) -> None:
    """Write the known rows (with canary secrets) in one transaction."""
    gateway = Gateway(db)
    with gateway.transaction():
        for sql in _SEED:
            gateway.execute(sql)


def seeded_db_path(data_dir: Path) -> Path:
    """A seeded, hardened-migrated database file under ``data_dir``, closed again."""
    path = data_dir / "state" / "system.duckdb"
    db = hardened_database(path, idle_release=None)
    try:
        seed(db)
    finally:
        db.close()
    return path


@dataclass
class SqlState:
    engine: SqlEngine
    db: Database


def make_server(db_path: Path, *, timeout: float = 5.0) -> MCPServer:
    """A minimal MCP server: a lifespan that opens the hardened database, and the SQL toolset."""

    @asynccontextmanager
    async def lifespan(app: MCPServer):
        db = hardened_database(db_path)
        try:
            yield SqlState(engine=SqlEngine(db, timeout=timeout), db=db)
        finally:
            db.close()

    mcp = MCPServer("sql-test", lifespan=lifespan)
    register_sql_tools(mcp, lambda ctx: ctx.request_context.lifespan_context.engine)
    return mcp


def with_client(server: MCPServer, body: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``body(client)`` against ``server`` over an in-memory MCP session."""

    async def main() -> T:
        async with Client(server) as client:
            return await body(client)

    return anyio.run(main)


def result_text(result: Any) -> str:
    """Everything a client sees of a tool result: text content and structured content."""
    parts = [getattr(block, "text", "") for block in result.content]
    if result.structured_content is not None:
        parts.append(repr(result.structured_content))
    return "\n".join(parts)


def dump(path: Path) -> str:
    """The whole content of a database file, as text: catalog, every row, sequence values."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        parts: list[str] = []
        for query in (
            "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal ORDER BY ALL",
            "SELECT schema_name, table_name, sql FROM duckdb_tables() ORDER BY ALL",
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL",
            "SELECT schema_name, sequence_name, last_value FROM duckdb_sequences() ORDER BY ALL",
            "SELECT schema_name, index_name, sql FROM duckdb_indexes() ORDER BY ALL",
            "SELECT schema_name, function_name, macro_definition FROM duckdb_functions() WHERE NOT internal ORDER BY ALL",
            "SELECT schema_name, type_name FROM duckdb_types() WHERE NOT internal ORDER BY ALL",
        ):
            parts.append(repr(conn.execute(query).fetchall()))
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        for schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL').fetchall()
            parts.append(f"{schema}.{table}: {rows!r}")
        return "\n".join(parts)
    finally:
        conn.close()


class FileWatch:
    """Linux inotify on some directories: every open, read, creation or change of a file in them."""

    _EVENTS: ClassVar[dict[int, str]] = {
        0x1: "read",
        0x2: "modified",
        0x20: "opened",
        0x100: "created",
        0x80: "moved in",
    }

    def __init__(self, *directories: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, Path] = {}
        mask = sum(self._EVENTS)
        for directory in directories:
            wd = self._libc.inotify_add_watch(self._fd, str(directory).encode(), mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {directory}")
            self._dirs[wd] = directory

    def events(self) -> list[str]:
        """``"<event> <path>"`` for everything since the last call."""
        found: list[str] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                what = ",".join(label for bit, label in self._EVENTS.items() if mask & bit) or hex(mask)
                found.append(f"{what} {self._dirs.get(wd, '?')}/{name}")

    def close(self) -> None:
        os.close(self._fd)


def files_under(root: Path, *, excluding: Path) -> set[str]:
    """Every path under ``root`` except those under ``excluding``."""
    return {str(p) for p in root.rglob("*") if excluding not in p.parents and p != excluding}


def replay(requests: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Feed the loads to a real worker runner; its copies' rows, by table."""
    runner = Runner(connect("256MB", 1), 5.0)
    for request in requests:
        if request["op"] == "load":
            parts = [part.decode() for part in request["parts"]]
            runner.load(request["table"], request["columns"], parts, request["replace"])
    return {
        t: runner.conn.execute(f'SELECT * FROM redacted."{t}" ORDER BY ALL').fetchall()
        for t in runner.columns
    }
