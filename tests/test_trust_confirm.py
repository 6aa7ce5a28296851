"""Ask before destroying: with elicitation, destructive calls ask first (both protocol eras);
a decline or cancel changes nothing and is audited as cancelled; without elicitation, as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult
from server_support import MODES, seeded_copy

from mcp_state.server import ServerSettings, build_server
from mcp_state.server.confirm import CONFIRMED

pytestmark = pytest.mark.anyio

DESTRUCTIVE = {
    "delete_user": {"user_id": "del@example.com"},
    "delete_knowledge_item": {"item_id": "km_del"},
    "unregister_table": {"table_id": "old_table"},
    "undeploy_script": {"script_id": "s_del"},
    "revoke_dataset_access": {"user_id": "ana@example.com", "dataset": "sales"},
    "unlink_telegram_user": {"user_id": "carol@example.com"},
}
STILL_THERE = {
    "delete_user": ("get_user", {"user_id": "del@example.com"}),
    "delete_knowledge_item": ("get_knowledge_item", {"item_id": "km_del"}),
    "unregister_table": ("get_registered_table", {"table_id": "old_table"}),
    "undeploy_script": ("get_script", {"script_id": "s_del"}),
    "unlink_telegram_user": ("get_telegram_link", {"user_id": "carol@example.com"}),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def answering(action: str, confirm: bool = True) -> tuple[Any, list[str]]:
    asked: list[str] = []

    async def callback(context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        content = {"confirm": confirm} if action == "accept" else None
        return ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback, asked


def client(db_path: Path, mode: str, callback: Any = None) -> Client:
    server = build_server(ServerSettings(db_path=str(db_path), actor="tester"))
    return Client(server, mode=mode, elicitation_callback=callback)


def test_the_issue_list_is_the_confirmed_list() -> None:
    assert set(DESTRUCTIVE) == CONFIRMED


@pytest.mark.parametrize(("action", "confirm"), [("decline", True), ("cancel", True), ("accept", False)])
async def test_no_means_nothing_changes(tmp_path: Path, mode: str, action: str, confirm: bool) -> None:
    db_path = seeded_copy(tmp_path)[0]
    callback, asked = answering(action, confirm)
    async with client(db_path, mode, callback) as session:
        for tool, arguments in DESTRUCTIVE.items():
            result = await session.call_tool(tool, arguments)
            assert result.is_error and result.content[0].text.endswith("[cancelled]"), (tool, result)
            if tool in STILL_THERE:
                name, args = STILL_THERE[tool]
                assert not (await session.call_tool(name, args)).is_error, tool
        log = (
            await session.call_tool("query_audit_log", {"result": "cancelled", "limit": 10})
        ).structured_content
    assert sorted(e["action"] for e in log["items"]) == sorted(DESTRUCTIVE)
    assert len(asked) == len(DESTRUCTIVE)
    assert "Delete user: user_id=del@example.com" in asked[0]


async def test_yes_removes(tmp_path: Path, mode: str) -> None:
    db_path = seeded_copy(tmp_path)[0]
    callback, asked = answering("accept")
    async with client(db_path, mode, callback) as session:
        for tool, arguments in DESTRUCTIVE.items():
            assert not (await session.call_tool(tool, arguments)).is_error, tool
            if tool in STILL_THERE:
                name, args = STILL_THERE[tool]
                assert (await session.call_tool(name, args)).is_error, tool
        # Other writes are not asked.
        await session.call_tool("vote_knowledge_item", {"item_id": "km_2", "vote": 1})
    assert len(asked) == len(DESTRUCTIVE)


async def test_without_elicitation_nothing_is_asked(tmp_path: Path, mode: str) -> None:
    db_path = seeded_copy(tmp_path)[0]
    async with client(db_path, mode) as session:
        assert not (await session.call_tool("delete_user", DESTRUCTIVE["delete_user"])).is_error
        assert (await session.call_tool("get_user", {"user_id": "del@example.com"})).is_error
