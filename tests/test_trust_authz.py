"""Callers act as themselves: tools/list per scope, hidden tools refused, acting for others needs admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_support import ANA, BOB, MODES, READ_ONLY, TOOLSETS, connect, seeded_copy
from test_server_http import mcp_client, running_app

from mcp_state.db import Database
from mcp_state.repositories.users import UserRepository

pytestmark = pytest.mark.anyio

ALL_TOOLS = set().union(*TOOLSETS.values())
ADMIN_ONLY = {
    "create_user",
    "update_user",
    "delete_user",
    "grant_dataset_access",
    "revoke_dataset_access",
    "link_telegram_user",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path, tokens = seeded_copy(tmp_path)
    with Database(path, idle_release=None) as db:  # the token actors are users: votes name a real user
        for actor in ("write-bot", "admin-bot"):
            UserRepository(db).create(actor, f"{actor}@example.com", actor)
    return path, tokens


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_shows_what_the_scope_may_call(
    seeded: tuple[Path, dict[str, str]], mode: str
) -> None:
    db_path, tokens = seeded
    async with running_app(db_path) as app:
        for scope, expected in (
            ("read", READ_ONLY),
            ("write", ALL_TOOLS - ADMIN_ONLY),
            ("admin", ALL_TOOLS),
        ):
            async with mcp_client(app, tokens[scope], mode) as client:
                assert {t.name for t in (await client.list_tools()).tools} == expected, scope


async def refused(client: Any, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    text = str(result.content[0].text)
    assert text.endswith("[permission_denied]") and "needs 'admin'" in text, text
    return text


async def test_a_write_token_acts_only_as_its_actor(seeded: tuple[Path, dict[str, str]]) -> None:
    db_path, tokens = seeded
    async with running_app(db_path) as app:
        async with mcp_client(app, tokens["write"], "auto") as writer:
            # Hidden from tools/list, refused (not "unknown tool") when called anyway.
            text = await refused(writer, "link_telegram_user", {"user_id": ANA, "chat_id": 666})
            assert "link_telegram_user" in text
            assert "as another user" in await refused(
                writer, "vote_knowledge_item", {"item_id": "km_2", "vote": 1, "user_id": ANA}
            )
            own = await writer.call_tool("vote_knowledge_item", {"item_id": "km_2", "vote": 1})
            assert own.structured_content["user_id"] == "write-bot"
            assert "owned by" in await refused(
                writer, "deploy_script", {"id": "s1", "name": "Hijack", "source": "steal()"}
            )
            await refused(writer, "deploy_script", {"id": "s_w", "name": "X", "source": "x", "owner": BOB})
            mine = await writer.call_tool("deploy_script", {"id": "s_w", "name": "Mine", "source": "x"})
            assert mine.structured_content["owner"] == "write-bot"
            redeploy = await writer.call_tool("deploy_script", {"id": "s_w", "name": "Mine 2", "source": "y"})
            assert not redeploy.is_error
            await refused(writer, "create_knowledge_item", {"id": "km_x", "title": "T", "status": "approved"})
            created = await writer.call_tool("create_knowledge_item", {"id": "km_x", "title": "T"})
            assert created.structured_content["source_user"] == "write-bot"
            assert created.structured_content["status"] == "pending"
            await refused(writer, "set_knowledge_status", {"item_id": "km_x", "status": "rejected"})
            archived = await writer.call_tool(
                "set_knowledge_status", {"item_id": "km_x", "status": "archived"}
            )
            assert not archived.is_error
        async with mcp_client(app, tokens["admin"], "auto") as admin:
            for tool, arguments in (
                ("vote_knowledge_item", {"item_id": "km_2", "vote": -1, "user_id": BOB}),
                ("deploy_script", {"id": "s1", "name": "Nightly", "source": "print(2)"}),
                ("set_knowledge_status", {"item_id": "km_x", "status": "approved"}),
                ("link_telegram_user", {"user_id": ANA, "chat_id": 777}),
            ):
                assert not (await admin.call_tool(tool, arguments)).is_error, tool
            log = (
                await admin.call_tool("query_audit_log", {"user_id": "write-bot", "limit": 50})
            ).structured_content
    denied = [e["action"] for e in log["items"] if e["result"] == "permission_denied"]
    assert sorted(denied) == sorted(
        [
            "link_telegram_user",
            "vote_knowledge_item",
            "deploy_script",
            "deploy_script",
            "create_knowledge_item",
            "set_knowledge_status",
        ]
    )


async def test_stdio_keeps_full_rights(seeded: tuple[Path, dict[str, str]]) -> None:
    async with connect(seeded[0], actor="ops") as client:
        assert {t.name for t in (await client.list_tools()).tools} == ALL_TOOLS
        vote = await client.call_tool("vote_knowledge_item", {"item_id": "km_2", "vote": 1, "user_id": BOB})
        assert vote.structured_content["user_id"] == BOB
        assert not (
            await client.call_tool("deploy_script", {"id": "s1", "name": "N", "source": "x"})
        ).is_error
