"""Tools an agent can call without thinking about size: the result budget, summaries, cursors
that hold while rows are written between pages, unknown arguments refused, the catalog's size."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_support import ITEMS, READS, build_big_state
from mcp import Client, StdioServerParameters
from server_support import connect

from mcp_state.db import Database, apply_migrations
from mcp_state.db import connect as connect_file
from mcp_state.repositories.knowledge import KnowledgeRepository
from mcp_state.repositories.users import UserRepository
from mcp_state.server.paging import decode_cursor, encode_cursor
from mcp_state.server.results import BOUNDARY, fit, size

pytestmark = pytest.mark.anyio
BUDGET = 20_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def big_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_big_state(tmp_path_factory.mktemp("big") / "big.duckdb")


@pytest.fixture
def big(big_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "big.duckdb"
    shutil.copyfile(big_template, target)
    return target


def within(result: Any, budget: int) -> dict[str, Any]:
    """The result's structured content, after checking text and structure both fit ``budget``."""
    assert not result.is_error, result.content[0].text[:300]
    text = "".join(block.text for block in result.content)
    assert len(text) <= budget, (len(text), text[:200])
    assert "\n " not in text  # compact JSON, not indented
    structured = result.structured_content
    assert (
        structured is not None
        and len(json.dumps(structured, separators=(",", ":"), ensure_ascii=False)) <= budget
    )
    return structured


async def every_read(client: Client, budget: int) -> dict[str, dict[str, Any]]:
    tools = (await client.list_tools()).tools
    reads = [t.name for t in tools if t.annotations and t.annotations.read_only_hint]
    assert len(reads) >= 24
    return {name: within(await client.call_tool(name, READS.get(name, {})), budget) for name in reads}


async def test_every_read_tool_fits_the_budget_on_a_big_state(big: Path) -> None:
    async with connect(big) as client:
        results = await every_read(client, BUDGET)
    listed = results["list_knowledge_items"]
    assert (
        listed["total"] == ITEMS and listed["as_of"] and "truncated" not in listed
    )  # a default page fits whole
    assert len(listed["items"]) == 25 and "truncated" not in results["search_knowledge"]
    assert set(listed["items"][0]) == {
        "id", "title", "status", "category", "tags", "snippet", "upvotes", "downvotes", "updated_at"
    }  # fmt: skip
    assert all(len(item["snippet"]) <= 200 for item in listed["items"])
    assert all("source" not in s and s["source_chars"] > 20_000 for s in results["list_scripts"]["items"])
    assert set(results["list_table_profiles"]["items"][0]) == {
        "table_id", "profiled_at", "column_count", "size_chars"
    }  # fmt: skip
    assert results["list_table_profiles"]["items"][0]["column_count"] == 400
    # A page that did not fit says so, and its cursor continues right after the last item shown.
    registered = results["list_registered_tables"]
    assert registered["truncated"] is True and "of the 50 items" in registered["omitted"]
    assert registered["has_more"] and "cursor=next_cursor" in registered["next_step"]
    # Single items with large fields are read in parts.
    script = results["get_script"]
    assert script["truncated"] and script["next_source_offset"] == len(script["source"])
    profile = results["get_table_profile"]
    assert profile["truncated"] and "profile.columns" in profile["omitted"]


async def test_a_smaller_budget_holds_for_every_read_tool_resource_and_prompt(big: Path) -> None:
    async with connect(big, max_result_chars=4000) as client:
        results = await every_read(client, 4000)
        assert results["list_knowledge_items"]["truncated"] is True
        for uri in ("state://schema", "state://sync", "state://audit/recent", "state://tables/table_1"):
            text = (await client.read_resource(uri)).contents[0].text
            assert len(text) <= 4000 and json.loads(text)["truncated"] is True, uri
        for name in ("triage_sync_failures", "review_pending_knowledge"):
            text = (await client.get_prompt(name)).messages[0].content.text
            assert len(text) <= 4000 and '"truncated":true' in text, name


async def test_cut_pages_continue_without_repeats_or_gaps(big: Path) -> None:
    seen: list[str] = []
    cursor = None
    async with connect(big) as client:
        while True:
            args = {
                "include_content": True,
                "limit": 200,
                "sort": "created",
                "tag": "tag0",
                **({"cursor": cursor} if cursor else {}),
            }
            result = within(await client.call_tool("list_knowledge_items", args), BUDGET)
            assert result["items"], "every page shows at least one item"
            assert all(item["content_chars"] == len(item["content"]) > 1000 for item in result["items"])
            seen += [item["id"] for item in result["items"]]
            cursor = result["next_cursor"]
            if not result["has_more"]:
                break
    assert seen == [f"km_{i:05d}" for i in reversed(range(0, ITEMS, 7))]


@pytest.mark.parametrize("sort", ["updated", "votes"])
async def test_cursors_hold_while_rows_are_inserted_between_pages(big: Path, sort: str) -> None:
    async with connect(big) as client:
        first = await client.call_tool("list_knowledge_items", {"sort": sort, "tag": "tag0", "limit": 200})
        before = [i["id"] for i in within(first, BUDGET)["items"]]
        cursor, seen, n = first.structured_content["next_cursor"], list(before), 0
        while cursor:
            for _ in range(1):  # our own writes land between pages (and each adds an audit row)
                n += 1
                created = await client.call_tool(
                    "create_knowledge_item",
                    {"id": f"new_{n}", "title": "Note", "content": "x" * 500, "tags": ["tag0"]},
                )
                assert not created.is_error
            page = within(
                await client.call_tool(
                    "list_knowledge_items", {"sort": sort, "tag": "tag0", "limit": 200, "cursor": cursor}
                ),
                BUDGET,
            )
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
    originals = [i for i in seen if i.startswith("km_")]
    assert len(originals) == len(set(originals)) == len(range(0, ITEMS, 7))  # none repeated, none skipped


async def test_user_pages_hold_while_users_are_added(big: Path) -> None:
    async with connect(big) as client:
        page = (await client.call_tool("list_users", {"limit": 200})).structured_content
        seen = [u["id"] for u in page["items"]]
        n = 0
        while page["has_more"]:
            n += 1
            # Sorted by email: these land both before and after the cursor.
            for email in (f"a{n}@example.com", f"zz{n}@example.com"):
                assert not (await client.call_tool("create_user", {"id": email, "email": email})).is_error
            page = (
                await client.call_tool("list_users", {"limit": 200, "cursor": page["next_cursor"]})
            ).structured_content
            seen += [u["id"] for u in page["items"]]
    original = [u for u in seen if u.startswith("u")]
    assert len(original) == len(set(original)) == 2000


async def test_bad_and_foreign_cursors_are_refused_with_the_fix(big: Path) -> None:
    async with connect(big) as client:
        users = (await client.call_tool("list_users", {"limit": 1})).structured_content["next_cursor"]
        for tool, cursor in (
            ("list_users", users[:-2] + "xx"),
            ("list_scripts", users),
            ("list_users", "!!"),
        ):
            result = await client.call_tool(tool, {"cursor": cursor})
            text = result.content[0].text
            assert result.is_error and "[invalid_argument]" in text and "leave cursor out" in text, text
        votes = (
            await client.call_tool("list_knowledge_items", {"sort": "votes", "limit": 1})
        ).structured_content
        result = await client.call_tool(
            "list_knowledge_items", {"sort": "updated", "cursor": votes["next_cursor"]}
        )
        assert result.is_error  # a cursor of one sort order is not a cursor of another


def test_cursors_are_opaque_and_keep_their_types() -> None:
    from datetime import UTC, datetime

    key = (datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "km_1", 2.5, 3)
    cursor = encode_cursor("knowledge:updated", key)
    assert "km_1" not in cursor and decode_cursor("knowledge:updated", cursor) == key


async def test_long_fields_are_read_in_parts_and_writes_do_not_echo_them(tmp_path: Path) -> None:
    source = "".join(f"line {i}: print('é\"\\\\')\n" for i in range(40_000))  # ~1 MB, with escapes
    content = 'Ünïcode "quoted" text\n' * 4000
    async with connect(tmp_path / "s.duckdb") as client:
        deployed = within(
            await client.call_tool("deploy_script", {"id": "s", "name": "S", "source": source[:999_999]}),
            BUDGET,
        )
        assert "source" not in deployed and deployed["source_chars"] == 999_999
        created = within(
            await client.call_tool("create_knowledge_item", {"id": "k", "title": "T", "content": content}),
            BUDGET,
        )
        assert "content" not in created and created["content_chars"] == len(content)
        saved = within(
            await client.call_tool(
                "save_table_profile", {"table_id": "t", "profile": {"columns": [{"n": "x" * 50}] * 3000}}
            ),
            BUDGET,
        )
        assert saved["column_count"] == 3000 and "profile" not in saved
        for tool, args, field, whole in (
            ("get_script", {"script_id": "s"}, "source", source[:999_999]),
            ("get_knowledge_item", {"item_id": "k"}, "content", content),
        ):
            parts, offset = [], 0
            while offset is not None:
                got = within(await client.call_tool(tool, {**args, f"{field}_offset": offset}), BUDGET)
                assert got[f"{field}_chars"] == len(whole)
                parts.append(got[field])
                offset = got[f"next_{field}_offset"]
                if offset is not None:
                    assert got["truncated"] and f"{field}_offset={offset}" in got["next_step"]
            assert "".join(parts) == whole and len(parts) > 2
        past = await client.call_tool("get_knowledge_item", {"item_id": "k", "content_offset": 10**8})
        assert past.is_error and "past the end" in past.content[0].text


def ranking_state(path: Path) -> None:
    with Database(path, idle_release=None) as db:
        repo = KnowledgeRepository(db)
        repo.create("title_both", "Revenue MRR definition", "How we count it.", "metrics")
        repo.create("content_both", "Monthly numbers", "The MRR is the monthly revenue.", "metrics")
        repo.create("content_one", "Refunds", "Revenue is net of refunds.", "metrics")
        repo.create("tag_one", "Recurring", "Counted monthly.", "metrics", tags=["MRR"])
        repo.create("title_one", "Revenue", "Nothing else here.", "metrics", status="approved")
        repo.create("other", "Churn", "Customers who left.", "metrics")
        repo.update("other", content="Churn lowers revenue and MRR.")  # the index follows updates
        repo.create("gone", "MRR revenue, deleted", "x", "metrics")
        repo.delete("gone")


async def test_search_ranks_more_words_then_title_then_tags(tmp_path: Path) -> None:
    ranking_state(tmp_path / "r.duckdb")
    async with connect(tmp_path / "r.duckdb") as client:
        found = within(await client.call_tool("search_knowledge", {"query": "revenue MRR"}), BUDGET)
        ids = [item["id"] for item in found["items"]]
        assert ids[0] == "title_both" and set(ids[1:3]) == {"content_both", "other"}
        assert ids[3:] == ["title_one", "tag_one", "content_one"]
        scores = [item["score"] for item in found["items"]]
        assert scores == sorted(scores, reverse=True) and found["total"] is None
        snippet = found["items"][ids.index("content_one")]["snippet"]
        assert "Revenue" in snippet
        approved = await client.call_tool("search_knowledge", {"query": "revenue", "status": ["approved"]})
        assert [i["id"] for i in approved.structured_content["items"]] == ["title_one"]
        tagged = await client.call_tool("search_knowledge", {"query": "counted", "tag": "mrr"})
        assert [i["id"] for i in tagged.structured_content["items"]] == ["tag_one"]
        listed = await client.call_tool("list_knowledge_items", {"tag": "MRR"})
        assert [i["id"] for i in listed.structured_content["items"]] == ["tag_one"]
        paged, cursor = [], None
        while True:
            page = (
                await client.call_tool(
                    "search_knowledge",
                    {"query": "revenue MRR", "limit": 2, **({"cursor": cursor} if cursor else {})},
                )
            ).structured_content
            paged += [i["id"] for i in page["items"]]
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
        assert paged == ids
        nothing = await client.call_tool("search_knowledge", {"query": "?!"})
        assert nothing.is_error and "no words" in nothing.content[0].text


async def test_catalog_stays_small(tmp_path: Path) -> None:
    """The model's view of each tool: name, description and input schema, at most 150 tokens (bytes/4) on average."""
    async with connect(tmp_path / "c.duckdb") as client:
        tools = (await client.list_tools()).tools
    sizes = {
        t.name: len((t.name + t.description + json.dumps(t.input_schema, separators=(",", ":"))).encode()) / 4
        for t in tools
    }
    assert sum(sizes.values()) / len(sizes) <= 150, sorted(sizes.items(), key=lambda kv: kv[1])[-5:]


def test_fit_keeps_a_structure_that_cannot_be_cut_to_a_note() -> None:
    assert size(fit({"a": "x" * 10_000}, 2000)) <= 2000
    assert fit([[[["deep"] * 5000]]], 200) == {
        "truncated": True,
        "omitted": "list: 1 of 1 entries",
        "next_step": "ask for less (a narrower filter or a single item)",
    }
    assert BOUNDARY.reserve >= 400  # the untrusted-data wrapping fits in what is reserved


@pytest.mark.slow
async def test_over_stdio_results_fit_the_budget(big: Path) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_state", "serve", "--db", str(big), "--max-result-chars", "6000"],
        env={"MCP_STATE_ACTOR": "stdio-agent"},
    )
    async with Client(server) as client:
        results = await every_read(client, 6000)
        assert results["search_knowledge"]["items"][0]["score"] > 0
        refused = await client.call_tool("list_users", {"name": "Eva"})
        assert refused.is_error and "its arguments are: role, limit, cursor" in refused.content[0].text


def test_users_repository_pages_by_keyset(tmp_path: Path) -> None:
    with Database(tmp_path / "u.duckdb", idle_release=None) as db:
        repo = UserRepository(db)
        for name in ("b", "a", "c"):
            repo.create(name, f"{name}@x.com", name)
        first = repo.list_all(limit=1)
        assert [u["id"] for u in repo.list_all(after=repo.key_of(first[0]))] == ["b", "c"]


def test_migration_4_indexes_the_items_already_there(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    conn = connect_file(path, migrate=False)
    apply_migrations(conn, target=3)
    conn.execute(
        "INSERT INTO knowledge_items (id, title, content, tags) VALUES "
        "('k1', 'Churn', 'Revenue lost to churn', '[\"MRR\"]'), ('k2', 'Other', 'nothing', NULL)"
    )
    conn.close()
    with Database(path, idle_release=None) as db:  # opening migrates to the latest version
        hits = KnowledgeRepository(db).search_ranked("mrr revenue")
    assert [(h["id"], h["score"]) for h in hits] == [("k1", 2.125)]
