"""Every tool through a real in-memory client, in both protocol eras: good and bad input,
audit rows, annotations, output schemas and the tool-list snapshot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest
from server_support import (
    ADDITIVE,
    ANA,
    BACKEND_MODES,
    CASES,
    MODES,
    NOT_IDEMPOTENT,
    PENDING_CODE,
    READ_ONLY,
    TOOLSETS,
    connect,
    seeded_copy,
    seeded_location,
)

from mcp_state.errors import InvalidArgumentError
from mcp_state.server import ServerSettings, build_server
from mcp_state.sql.hardening import hardened_config

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "server_tools.json"
# Lists still paged by offset: the sync and audit lists, which issue 9 part B moves to cursors.
STILL_OFFSET: set[str] = set()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return seeded_copy(tmp_path)[0]


@pytest.fixture
def seeded(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """The seeded database on each backend in turn (a DuckDB file, a PostgreSQL database)."""
    return seeded_location(tmp_path, backend, request)[0]


async def audit_total(client: Any, action: str) -> int:
    result = await client.call_tool("query_audit_log", {"action": action, "limit": 1})
    return int(result.structured_content["total"])


def error_text(result: Any) -> str:
    assert result.is_error, f"expected an error, got {result.structured_content}"
    return result.content[0].text


@BACKEND_MODES
async def test_every_tool_with_good_and_bad_input(seeded: str, mode: str) -> None:
    async with connect(seeded, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == set(CASES), "every tool needs a good and a bad case here"
        for name, (good, bad, kind) in CASES.items():
            mutating = name not in READ_ONLY
            before = await audit_total(client, name)

            ok = await client.call_tool(name, good)
            assert not ok.is_error, f"{name}: {ok.content[0].text}"
            jsonschema.validate(ok.structured_content, tools[name].output_schema)

            failed = await client.call_tool(name, bad)
            message = error_text(failed)
            assert message.endswith(f"[{kind}]"), f"{name}: {message}"
            assert "Traceback" not in message and "SELECT" not in message and "INSERT" not in message
            if kind == "not_found":
                assert "Call " in message or "Ask " in message, f"{name}: no next step in {message!r}"
            if kind == "invalid_argument":
                assert "Fix" in message, f"{name}: no next step in {message!r}"

            after = await audit_total(client, name)
            assert after - before == (2 if mutating else 0), f"{name}: {after - before} audit rows"
            if mutating:
                rows = (
                    await client.call_tool("query_audit_log", {"action": name, "limit": 2})
                ).structured_content
                assert [row["result"] for row in rows["items"]] == [kind, "ok"]
                assert all(row["user_id"] == "tester" for row in rows["items"])
                assert all(isinstance(row["duration_ms"], int) for row in rows["items"])


@BACKEND_MODES
async def test_results_say_what_they_did(seeded: str, mode: str) -> None:
    async with connect(seeded, mode) as client:
        item = (await client.call_tool("get_knowledge_item", {"item_id": "km_1"})).structured_content
        assert (item["upvotes"], item["downvotes"]) == (1, 1)

        page = (await client.call_tool("list_sync_states", {"limit": 1})).structured_content
        assert (page["total"], page["has_more"], len(page["items"])) == (2, True, 1)
        cursor = page["next_cursor"]
        page = (await client.call_tool("list_sync_states", {"limit": 1, "cursor": cursor})).structured_content
        assert (page["has_more"], page["next_cursor"], page["items"][0]["table_id"]) == (
            False,
            None,
            "orders",
        )

        history = (await client.call_tool("get_sync_history", {"table_id": "orders"})).structured_content
        assert history["total"] == 2 and [run["rows"] for run in history["items"]] == [120, 100]

        created = (
            await client.call_tool("create_knowledge_item", {"id": "k9", "title": "T"})
        ).structured_content
        assert (created["source_user"], created["contributors"], created["status"]) == (
            "tester",
            ["tester"],
            "pending",
        )

        refused = await client.call_tool("vote_knowledge_item", {"item_id": "km_1", "vote": -1})
        assert "no user has id 'tester'" in error_text(refused)  # the actor is not a user: say who votes
        carol = "carol@example.com"
        vote = (
            await client.call_tool("vote_knowledge_item", {"item_id": "km_1", "vote": -1, "user_id": carol})
        ).structured_content
        assert vote == {"item_id": "km_1", "user_id": carol, "vote": -1, "upvotes": 1, "downvotes": 2}

        link = (
            await client.call_tool("verify_pending_code", {"user_id": ANA, "code": PENDING_CODE})
        ).structured_content
        assert (link["user_id"], link["chat_id"]) == (ANA, 9001)
        again = await client.call_tool("verify_pending_code", {"user_id": ANA, "code": PENDING_CODE})
        assert "already used" in error_text(again)

        user = (await client.call_tool("get_user", {"user_id": ANA})).structured_content
        assert user["has_password"] is True and "password_hash" not in user

        logged = await client.call_tool(
            "log_audit_event", {"action": "x", "params": {"password": "p", "n": 1}}
        )
        entry = (await client.call_tool("query_audit_log", {"action": "x"})).structured_content["items"][0]
        assert entry["id"] == logged.structured_content["id"]
        assert entry["params"] == {"password": "[redacted]", "n": 1}


async def test_failed_change_leaves_nothing_half_done(
    db_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected database failure midway: generic message, no SQL, the first half rolled back, one audit row."""
    async with connect(db_path, mode) as client:
        before = (await client.call_tool("get_sync_state", {"table_id": "orders"})).structured_content
        # record_sync upserts sync_state, then inserts into sync_history: make the second step fail.
        # Same process and configuration: DuckDB shares the server's open database.
        raw = duckdb.connect(str(db_path), config=hardened_config(db_path))
        raw.execute("DROP INDEX sync_history_table_idx")
        raw.execute("ALTER TABLE sync_history RENAME TO sync_history_gone")
        try:
            failed = await client.call_tool(
                "record_sync", {"table_id": "orders", "rows": 999, "file_size_bytes": 1, "hash": "half"}
            )
        finally:
            raw.execute("ALTER TABLE sync_history_gone RENAME TO sync_history")
            raw.execute("CREATE INDEX sync_history_table_idx ON sync_history (table_id)")
            raw.close()
        message = error_text(failed)
        assert message.endswith("[internal_error]") and "nothing was changed" in message
        for leak in ("sync_history", "INSERT", "Catalog", "Traceback"):
            assert leak not in message
        after = (await client.call_tool("get_sync_state", {"table_id": "orders"})).structured_content
        assert after == before
        rows = (
            await client.call_tool("query_audit_log", {"action": "record_sync", "limit": 1})
        ).structured_content
        assert rows["items"][0]["result"] == "internal_error"
    assert "sync_history" not in caplog.text and "INSERT" not in caplog.text


async def test_annotations_and_schemas_are_true(db_path: Path) -> None:
    async with connect(db_path) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        a = tool.annotations
        assert tool.title and a is not None and a.title == tool.title, tool.name
        assert tool.description and "\n" not in tool.description and len(tool.description) <= 160, tool.name
        assert a.open_world_hint is False, tool.name
        assert a.read_only_hint is (tool.name in READ_ONLY), tool.name
        assert a.destructive_hint is (tool.name not in READ_ONLY and tool.name not in ADDITIVE), tool.name
        assert a.idempotent_hint is (tool.name not in NOT_IDEMPOTENT), tool.name
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        props = tool.input_schema.get("properties", {})
        for param, schema in props.items():
            assert schema.get("description"), f"{tool.name}.{param} has no description"
        if tool.name == "sql_query":  # not a paged list: a row cap for one query
            assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 10_000)
        elif "limit" in props:
            assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 200), tool.name
            if tool.name in STILL_OFFSET:  # the sync and audit lists move to cursors with issue 9 part B
                assert "offset" in props and props["offset"]["minimum"] == 0, tool.name
                continue
            assert "offset" not in props and "cursor" in props, tool.name
            assert {"items", "has_more", "next_cursor", "total", "as_of"} <= set(
                tool.output_schema["properties"]
            ), tool.name
        assert tool.input_schema.get("additionalProperties") is False, tool.name
    schemas = {tool.name: tool.input_schema["properties"] for tool in tools}
    assert schemas["list_users"]["role"]["anyOf"][0]["enum"] == ["admin", "analyst", "viewer"]
    assert schemas["set_knowledge_status"]["status"]["enum"] == [
        "pending",
        "approved",
        "rejected",
        "archived",
    ]
    assert schemas["vote_knowledge_item"]["vote"]["enum"] == [1, -1]
    assert not any("password" in p for props in schemas.values() for p in props), "no tool sets a password"
    assert not any("code" in name and "verify" not in name for name in schemas), "no tool lists codes"


async def test_tool_list_snapshot(db_path: Path) -> None:
    """The public surface; regenerate with UPDATE_SNAPSHOTS=1 and review the diff."""
    async with connect(db_path) as client:
        tools = (await client.list_tools()).tools
    current = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    current.sort(key=lambda tool: tool["name"])
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), (
        "tool surface changed: rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    )


async def test_read_only_and_toolsets(db_path: Path) -> None:
    async with connect(db_path, read_only=True) as client:
        assert {t.name for t in (await client.list_tools()).tools} == READ_ONLY
    async with connect(db_path, toolsets=("sync", "audit")) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLSETS["sync"] | TOOLSETS["audit"]
    assert set().union(*TOOLSETS.values()) == set(CASES)
    with pytest.raises(InvalidArgumentError, match="unknown toolset nope"):
        build_server(ServerSettings(db_path=str(db_path), toolsets=("nope",)))


async def test_reads_write_nothing(db_path: Path) -> None:
    async with connect(db_path) as client:
        before = (await client.call_tool("query_audit_log", {})).structured_content["total"]
        for name in READ_ONLY:
            await client.call_tool(name, CASES[name][0])
        assert (await client.call_tool("query_audit_log", {})).structured_content["total"] == before


async def test_unknown_arguments_and_tools(db_path: Path) -> None:
    async with connect(db_path) as client:
        result = await client.call_tool("drop_everything", {})
        assert result.is_error
        result = await client.call_tool(
            "create_user", {"id": "x", "email": "x@example.com", "password_hash": "h"}
        )
        # An argument the tool does not have is refused by name, with the arguments it has; nothing is stored.
        assert result.is_error
        message = error_text(result)
        assert "create_user has no argument 'password_hash'" in message and "id, email, name, role" in message
        assert message.endswith("[invalid_argument]")
        assert (await client.call_tool("get_user", {"user_id": "x"})).is_error
        assert "list_users has no argument 'name'" in error_text(
            await client.call_tool("list_users", {"name": "Eva"})
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
