"""Live state: resource subscriptions on both protocol eras, logging, progress, honest capabilities."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import LoggingMessageNotificationParams, ResourceUpdatedNotification
from server_support import ANA, connect, seeded_copy
from test_trust_conformance import HELPERS, REPO

from mcp_state.server import ServerSettings, build_server
from mcp_state.server.live import affected
from mcp_state.sql.engine import SqlEngine

pytestmark = pytest.mark.anyio

SYNC = {"table_id": "orders", "rows": 1, "file_size_bytes": 1, "hash": "h-live"}
WATCHED = ["state://sync/orders", "state://sync", "state://knowledge/km_1", "state://audit/recent"]
# A query that runs for seconds (a cross join of 10^10 rows).
SLOW = "SELECT sum(a.range * b.range) AS s FROM range(100000) a, range(100000) b"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return seeded_copy(tmp_path)[0]


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_handshake_era_subscribe(db_path: Path) -> None:
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(message.params.uri)

    server = build_server(ServerSettings(db_path=str(db_path), actor="tester"))
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        caps = client.server_capabilities
        assert caps is not None and caps.resources is not None and caps.logging is not None
        assert caps.resources.subscribe and not caps.resources.list_changed
        assert not (caps.tools and caps.tools.list_changed) and not (
            caps.prompts and caps.prompts.list_changed
        )
        for uri in WATCHED:
            await client.subscribe_resource(uri)
        await client.unsubscribe_resource("state://sync")
        assert not (await client.call_tool("record_sync", SYNC)).is_error
        with anyio.fail_after(1):
            while len(updated) < 2:
                await anyio.sleep(0.01)
        await client.call_tool("get_sync_state", {"table_id": "orders"})  # a read changes nothing
        await anyio.sleep(0.05)
    assert sorted(updated) == ["state://audit/recent", "state://sync/orders"]


async def test_2026_listen(db_path: Path) -> None:
    server = build_server(ServerSettings(db_path=str(db_path), actor="tester"))
    async with Client(server, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        caps = client.server_capabilities
        assert caps is not None and caps.resources is not None and caps.resources.subscribe
        assert not caps.resources.list_changed and not (caps.tools and caps.tools.list_changed)
        assert not (caps.prompts and caps.prompts.list_changed)
        async with client.listen(resource_subscriptions=WATCHED) as events:
            assert not (
                await client.call_tool("vote_knowledge_item", {"item_id": "km_1", "vote": 1, "user_id": ANA})
            ).is_error
            got = []
            with anyio.fail_after(1):
                async for event in events:
                    got.append(event.uri)
                    if len(got) == 2:
                        break
    assert sorted(got) == ["state://audit/recent", "state://knowledge/km_1"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_progress_and_a_timeout_warning(
    db_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SqlEngine.__init__.__kwdefaults__ is not None
    monkeypatch.setitem(SqlEngine.__init__.__kwdefaults__, "timeout", 1.6)
    logged: list[LoggingMessageNotificationParams] = []
    progress: list[tuple[float, str | None]] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    server = build_server(ServerSettings(db_path=str(db_path), actor="tester"))
    async with Client(server, mode=mode, logging_callback=on_log, log_level="warning") as client:
        if mode == "legacy":
            await client.set_logging_level("warning")
        result = await client.call_tool("sql_query", {"sql": SLOW}, progress_callback=on_progress)
        await anyio.sleep(0.1)
    assert result.is_error and "[timeout]" in result.content[0].text
    assert progress and progress[0][0] >= 1 and "sql_query: running for" in str(progress[0][1])
    assert [(m.level, m.data) for m in logged] == [("warning", "sql_query stopped by its time limit (1.6 s)")]


async def test_no_progress_without_a_token(db_path: Path) -> None:
    async with connect(db_path) as client:
        result = await client.call_tool("sql_query", {"sql": "SELECT 1 AS one"})
        assert not result.is_error


@pytest.mark.parametrize(
    ("tool", "toolset", "arguments", "uris"),
    [
        ("record_sync", "sync", {"table_id": "t"}, {"sync", "sync/t", "sync/t/history", "tables/t"}),
        ("set_sync_settings", "sync", {"user_id": "u", "dataset": "d"}, {"users/u"}),
        ("grant_dataset_access", "users", {"user_id": "u", "dataset": "d"}, {"users/u"}),
        ("create_user", "users", {"id": "u", "email": "u@x"}, {"users/u"}),
        ("link_telegram_user", "notifications", {"user_id": "u", "chat_id": 1}, {"users/u"}),
        ("create_knowledge_item", "knowledge", {"id": "k", "title": "T"}, {"knowledge/k"}),
        ("vote_knowledge_item", "knowledge", {"item_id": "k", "vote": 1}, {"knowledge/k"}),
        ("register_table", "registry", {"id": "t", "name": "T"}, {"tables/t"}),
        ("save_table_profile", "registry", {"table_id": "t", "profile": {}}, {"tables/t"}),
        ("deploy_script", "scripts", {"id": "s"}, set()),
        ("log_audit_event", "audit", {"action": "x"}, set()),
    ],
)
def test_what_a_write_changes(tool: str, toolset: str, arguments: dict[str, Any], uris: set[str]) -> None:
    assert affected(tool, toolset, arguments) == {"state://audit/recent"} | {f"state://{u}" for u in uris}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_wait_for_the_lock_sends_progress_and_a_warning(db_path: Path) -> None:
    logged: list[LoggingMessageNotificationParams] = []
    progress: list[str | None] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    holder = subprocess.Popen(
        [sys.executable, str(HELPERS / "state_proc.py"), "hold", str(db_path), "2.5"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        server = build_server(ServerSettings(db_path=str(db_path), actor="tester", lock_timeout=20))
        async with Client(server, mode="legacy", logging_callback=on_log) as client:
            await client.set_logging_level("warning")
            result = await client.call_tool("record_sync", SYNC, progress_callback=on_progress)
            await anyio.sleep(0.05)
    finally:
        holder.wait(timeout=20)
        holder.stdout.close()  # type: ignore[union-attr]
    assert not result.is_error
    assert progress and "record_sync: waiting for the database for 1 s" in str(progress[0])
    assert [m.data for m in logged] == [
        "record_sync is waiting for the database, which another process holds"
    ]
