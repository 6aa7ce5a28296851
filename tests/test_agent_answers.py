"""Questions agents ask, answered right in one call, on generated data (tests/agent_data.py):
sync failures and history across tables, audit by actor, partial sync reports, unknown ids and
dangling references refused with hints, relative times, cursors that hold while rows are
written between pages, and order that follows commits when the clock steps back."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from agent_data import LATEST_FAILED, MOST_FAILED, audit_data, sync_data
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from server_support import ANA, BOB, connect, seeded_location

from mcp_state.gateway import use_clock

NOW = datetime.now(UTC)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _fill(path: Path) -> None:
    with duckdb.connect(str(path)) as conn:
        sync_data(conn, NOW, filler=500)
        audit_data(conn, 2_000, NOW)


@pytest.fixture
def db_path(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """The seeded state with a week of syncs and audit rows, on each backend in turn."""
    return seeded_location(tmp_path, backend, request, fill=_fill)[0]


async def call(client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"
    return result.structured_content  # type: ignore[no-any-return]


async def refused(client: Any, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have been refused: {result.structured_content}"
    text: str = result.content[0].text
    assert "Traceback" not in text and "internal" not in text.lower()
    return text


async def test_which_table_failed_most_this_week(db_path: str) -> None:
    async with connect(db_path) as client:
        latest = await call(client, "list_sync_states", status="error")
        failing_now = {s["table_id"] for s in latest["items"]}  # the tempting wrong answer
        assert LATEST_FAILED in failing_now and MOST_FAILED not in failing_now

        summary = await call(client, "summarize_sync_failures")  # since="7d"
        top, second = summary["items"][:2]
        assert (top["table_id"], top["failures"], top["current_status"]) == (MOST_FAILED, 5, "ok")
        assert top["last_error"] == "source timed out on day 12" and top["syncs"] == 7
        assert (second["table_id"], second["failures"], second["current_status"]) == (
            LATEST_FAILED,
            2,
            "error",
        )
        assert "table_05" not in {row["table_id"] for row in summary["items"]}  # failed 11 days ago
        assert summary["as_of"] and not summary["has_more"]

        wide = await call(client, "summarize_sync_failures", since="2w")
        assert {row["table_id"] for row in wide["items"]} == {MOST_FAILED, LATEST_FAILED, "table_05"}


async def test_history_of_all_tables_filtered_by_status_and_time(db_path: str) -> None:
    async with connect(db_path) as client:
        failed = await call(client, "get_sync_history", status="error", since="7d", limit=200)
        assert sorted(run["table_id"] for run in failed["items"]) == [MOST_FAILED] * 5 + [LATEST_FAILED] * 2
        assert failed["total"] == 7 and failed["as_of"]
        seqs = [run["seq"] for run in failed["items"]]
        assert seqs == sorted(seqs, reverse=True)  # newest first

        today = await call(client, "get_sync_history", since="30m")
        assert {run["table_id"] for run in today["items"]} >= {f"table_{n:02d}" for n in range(12)}
        one = await call(client, "get_sync_history", table_id=MOST_FAILED, since="3d", until="1d")
        assert [run["status"] for run in one["items"]] == ["error", "error"]

        iso = (NOW - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await call(client, "get_sync_history", status="error", since=iso))["total"] == 7


async def test_cursors_hold_while_rows_are_written_between_pages(db_path: str) -> None:
    async with connect(db_path) as client:
        seen: list[str] = []
        page = await call(client, "get_sync_history", table_id=MOST_FAILED, limit=7)
        runs_before = page["total"]
        while True:
            seen += [run["id"] for run in page["items"]]
            # Our own writes land between pages: a new sync (history row) and an audit row.
            await call(client, "record_sync", table_id=MOST_FAILED, rows=1)
            if not page["has_more"]:
                break
            page = await call(
                client, "get_sync_history", table_id=MOST_FAILED, limit=7, cursor=page["next_cursor"]
            )
        assert len(seen) == len(set(seen)) == runs_before  # no row twice, none skipped
        assert page["total"] == runs_before + len(seen) // 7 - 1  # the writes between the 8 pages

        entries: list[str] = []
        page = await call(client, "query_audit_log", limit=150)
        first_total = page["total"]
        while True:
            entries += [entry["id"] for entry in page["items"]]
            await call(client, "log_audit_event", action="between_pages")
            if not page["has_more"]:
                break
            page = await call(client, "query_audit_log", limit=150, cursor=page["next_cursor"])
        assert len(entries) == len(set(entries)) == first_total

        bad = await refused(client, "get_sync_history", cursor="not-a-cursor")
        assert "next_cursor" in bad and "[invalid_argument]" in bad
        other = (await call(client, "list_sync_states", limit=1))["next_cursor"]
        assert "[invalid_argument]" in await refused(client, "query_audit_log", cursor=other)


async def test_audit_actor_filter_ignores_case_and_refuses_unknown_actors(db_path: str) -> None:
    async with connect(db_path) as client:
        lower = await call(client, "query_audit_log", user_id="claude", limit=5)
        upper = await call(client, "query_audit_log", user_id="Claude", limit=5)
        assert lower["total"] == upper["total"] == 500 and lower["items"] == upper["items"]
        text = await refused(client, "query_audit_log", user_id="claud")
        assert "no audit entry has actor 'claud'" in text and "claude" in text and "[not_found]" in text
        recent = await call(client, "query_audit_log", since="10m", action="record_sync")
        assert 0 < recent["total"] <= 200


async def test_record_sync_keeps_what_it_is_not_told(db_path: str) -> None:
    async with connect(db_path) as client:
        before = await call(client, "get_sync_state", table_id="orders")
        assert (before["columns"], before["hash"]) == (5, "h-orders-2")
        state = await call(client, "record_sync", table_id="orders", rows=1200, status="ok")
        assert state["rows"] == 1200
        for kept in ("file_size_bytes", "uncompressed_size_bytes", "columns", "hash"):
            assert state[kept] == before[kept], kept

        text = await refused(client, "record_sync", table_id="orders", rows=5, status="error")
        assert "needs the error message" in text and "[invalid_argument]" in text
        failed = await call(client, "record_sync", table_id="orders", status="error", error="disk full")
        assert (failed["status"], failed["error"], failed["rows"]) == ("error", "disk full", 1200)
        history = (await call(client, "get_sync_history", table_id="orders", limit=2))["items"]
        assert [(h["status"], h["rows"], h["error"]) for h in history] == [
            ("error", None, "disk full"),  # what was reported: no row count
            ("ok", 1200, None),
        ]
        healed = await call(client, "record_sync", table_id="orders", rows=1300)
        assert (healed["status"], healed["error"]) == ("ok", None)


async def test_unknown_ids_and_dangling_references_are_refused_with_hints(db_path: str) -> None:
    async with connect(db_path) as client:
        assert "list_registered_tables" in await refused(client, "get_sync_history", table_id="ordres")
        text = await refused(client, "list_dataset_permissions", user_id="Ana")
        assert "find_user_by_email" in text and "[not_found]" in text
        bob = await call(client, "find_user_by_email", email=BOB)
        assert bob["id"] == BOB  # legacy ids are emails; a user created with another id:
        await call(client, "create_user", id="u-eva", email="eva@example.com", name="Eva")
        text = await refused(client, "grant_dataset_access", user_id="eva@example.com", dataset="hr")
        assert "is an email, not a user id: pass user_id='u-eva'" in text

        dangling = [
            ("vote_knowledge_item", {"item_id": "km_2", "vote": 1, "user_id": "ghost"}),
            ("link_telegram_user", {"user_id": "ghost", "chat_id": 1}),
            ("set_sync_settings", {"user_id": "ghost", "dataset": "sales", "enabled": True}),
            ("grant_dataset_access", {"user_id": "ghost", "dataset": "sales"}),
            ("deploy_script", {"id": "s9", "name": "x", "source": "", "owner": "ghost"}),
            ("save_table_profile", {"table_id": "ghost_table", "profile": {"row_count": 1}}),
            ("get_sync_settings", {"user_id": "ghost"}),
            ("list_scripts", {"owner": "ghost"}),
        ]
        for tool, arguments in dangling:
            text = await refused(client, tool, **arguments)
            assert "ghost" in text and "[not_found]" in text, f"{tool}: {text}"
        # the actor is not a user: a vote or a script without an explicit user says so
        assert "no user has id 'tester'" in await refused(
            client, "vote_knowledge_item", item_id="km_2", vote=1
        )
        assert "ghost" not in str(await call(client, "sql_query", sql="SELECT user_id FROM knowledge_votes"))
        assert await call(client, "save_table_profile", table_id="table_03", profile={"row_count": 1})


async def test_delete_user_says_what_went_with_them(db_path: str) -> None:
    async with connect(db_path) as client:
        text = await refused(client, "delete_user", user_id=BOB)  # owns script s_del
        assert "owns scripts (s_del)" in text and "[conflict]" in text
        await call(client, "undeploy_script", script_id="s_del")
        deleted = await call(client, "delete_user", user_id=BOB)
        assert deleted["removed"] == {
            "votes": 1,
            "telegram_links": 1,
            "sync_settings": 0,
            "dataset_permissions": 1,
        }
        votes = await call(client, "get_knowledge_votes", item_id="km_1")
        assert [v["user_id"] for v in votes["items"]] == [ANA]


OUT_OF_RANGE = [
    "999999w",
    "99999999999d",
    "0001-01-01",
    "9999-12-31T23:59:59",
    "0001-01-01T00:00:00+05:00",
    "soon",
]


async def test_relative_times_are_accepted_and_out_of_range_ones_refused(db_path: str) -> None:
    async with connect(db_path) as client:
        for since in ("30m", "24h", "7d", "2w", "2026-01-31", "2026-01-31T08:00:00+01:00"):
            await call(client, "query_audit_log", since=since, limit=1)
            await client.get_prompt("summarize_audit_activity", {"since": since})
        for since in OUT_OF_RANGE:
            for tool in ("get_sync_history", "summarize_sync_failures", "query_audit_log"):
                assert "[invalid_argument]" in await refused(client, tool, since=since), (tool, since)
            assert "[invalid_argument]" in await refused(client, "get_sync_history", until=since)
            with pytest.raises(MCPError, match="since"):
                await client.get_prompt("summarize_audit_activity", {"since": since})


async def test_order_follows_commits_when_the_clock_steps_back(db_path: str) -> None:
    now = [datetime(2031, 5, 1, 12, 0, tzinfo=UTC)]
    async with connect(db_path) as client:
        with use_clock(lambda: now[0]):
            await call(client, "record_sync", table_id="orders", rows=1)
            await call(client, "update_knowledge_item", item_id="km_1", title="first")
            now[0] -= timedelta(hours=1)  # the clock steps back between two writes
            state = await call(client, "record_sync", table_id="orders", rows=2)
            await call(client, "update_knowledge_item", item_id="km_2", title="second")
        assert state["last_sync"] == "2031-05-01T12:00:00Z"  # the later of the two is kept
        history = (await call(client, "get_sync_history", table_id="orders", limit=2))["items"]
        assert [run["rows"] for run in history] == [2, 1]  # the newest write is first
        assert (
            history[0]["synced_at"] == "2031-05-01T11:00:00Z"
            and "clock stepped back 1:00:00" in history[0]["note"]
        )
        assert history[1]["note"] is None
        audit = (await call(client, "query_audit_log", action="record_sync", limit=2))["items"]
        assert [entry["params"]["rows"] for entry in audit] == [2, 1]
        items = (await call(client, "list_knowledge_items", limit=2))["items"]
        assert [item["title"] for item in items] == ["second", "first"]


@pytest.mark.slow
async def test_the_questions_over_stdio(db_path: str) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_state", "serve", "--db", str(db_path)],
        env={"MCP_STATE_ACTOR": "claude", "PATH": os.environ.get("PATH", "")},
    )
    async with Client(server) as client:
        top = (await call(client, "summarize_sync_failures", since="1w"))["items"][0]
        assert (top["table_id"], top["failures"], top["current_status"]) == (MOST_FAILED, 5, "ok")
        failed = await call(client, "get_sync_history", status="error", since="168h", limit=3)
        assert failed["total"] == 7 and len(failed["items"]) == 3 and failed["next_cursor"]
        rest = await call(
            client, "get_sync_history", status="error", since="168h", cursor=failed["next_cursor"]
        )
        assert len(rest["items"]) == 4 and not rest["has_more"]
        state = await call(client, "record_sync", table_id=MOST_FAILED, rows=7, status="ok")
        assert (state["rows"], state["hash"], state["columns"]) == (7, "hash-h-159", 8)
        mine = await call(client, "query_audit_log", user_id="CLAUDE", resource=MOST_FAILED, since="5m")
        assert mine["total"] == 1 and mine["items"][0]["action"] == "record_sync"
        assert "[not_found]" in await refused(client, "get_sync_history", table_id="table_99")
