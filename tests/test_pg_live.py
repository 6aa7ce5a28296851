"""Resource subscriptions on PostgreSQL hear other processes' writes (LISTEN/NOTIFY).

A server in memory serves a PostgreSQL database; a second ``Database`` on the same database
(what another process holds) writes through the Python API. A subscribed client is told of
the resources that write changed, within a bounded time, and not of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ResourceUpdatedNotification

from mcp_state.db import Database
from mcp_state.repositories import KnowledgeRepository, UserRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.server import ServerSettings, build_server
from mcp_state.server.live import reads

pytestmark = pytest.mark.anyio

SYNCED = "state://sync/orders"
USER = "state://users/u1"
BOUND = 5.0  # seconds for another process's write to reach a subscriber (tens of ms here)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _until(updated: list[str], uri: str) -> None:
    with anyio.fail_after(BOUND):
        while uri not in updated:
            await anyio.sleep(0.01)


async def _writes_of_another_process_reach(updated: list[str], writer: Database) -> None:
    sync = SyncStateRepository(writer)

    def synced(rows: int) -> Callable[[], Any]:
        return lambda: sync.update_sync("orders", rows, 10, f"h{rows}")

    # The server's listener connects as it starts: write until it has heard one.
    with anyio.fail_after(BOUND):
        while SYNCED not in updated:
            await anyio.to_thread.run_sync(synced(1))
            with anyio.move_on_after(0.5):
                await _until(updated, SYNCED)
    await anyio.sleep(0.2)  # anything still on its way
    updated.clear()
    # Tables no subscribed resource reads: nothing; then the sync state: its one resource.
    await anyio.to_thread.run_sync(lambda: KnowledgeRepository(writer).create("k1", "T", "C", "c"))
    await anyio.to_thread.run_sync(synced(2))
    await _until(updated, SYNCED)
    await anyio.sleep(0.1)
    assert updated == [SYNCED]
    await anyio.to_thread.run_sync(lambda: UserRepository(writer).create("u1", "a@example.com", "A"))
    await _until(updated, USER)
    assert updated == [SYNCED, USER]


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_subscriber_hears_another_process_write_handshake_era(pg_state_url: str) -> None:
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(message.params.uri)

    server = build_server(ServerSettings(db_path=pg_state_url, actor="tester"))
    with Database(pg_state_url) as writer:
        async with Client(server, mode="legacy", message_handler=on_message) as client:
            for uri in (SYNCED, USER):
                await client.subscribe_resource(uri)
            await _writes_of_another_process_reach(updated, writer)


async def test_a_listen_stream_hears_another_process_write(pg_state_url: str) -> None:
    updated: list[str] = []
    server = build_server(ServerSettings(db_path=pg_state_url, actor="tester"))
    with Database(pg_state_url) as writer:
        async with Client(server, mode="auto") as client:
            assert client.protocol_version == "2026-07-28"
            async with (
                client.listen(resource_subscriptions=[SYNCED, USER]) as events,
                anyio.create_task_group() as tasks,
            ):

                async def collect() -> None:
                    async for event in events:
                        updated.append(event.uri)

                tasks.start_soon(collect)
                await _writes_of_another_process_reach(updated, writer)
                tasks.cancel_scope.cancel()


def test_each_resource_reads_the_tables_it_shows() -> None:
    assert reads("state://sync") == reads("state://sync/orders") == {"sync_state"}
    assert reads("state://sync/orders/history?cursor=x") == {"sync_history"}
    assert reads("state://knowledge/k1") == {"knowledge_items", "knowledge_votes"}
    assert "telegram_links" in reads("state://users/u1")
    assert "table_profiles" in reads("state://tables/orders")
    assert reads("state://audit/recent") == {"audit_log"}
    assert reads("state://schema") == frozenset()
