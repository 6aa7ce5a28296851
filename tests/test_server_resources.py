"""state:// resources, their completions, the prompts and the server instructions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference
from server_support import ANA, BACKEND_MODES, MODES, connect, prompt_text, seeded_location, unmarked

from mcp_state.schema import TABLE_DESCRIPTIONS

pytestmark = pytest.mark.anyio

STATIC = {"state://schema", "state://sync", "state://audit/recent"}
TEMPLATES = {
    "state://sync/{table_id}",
    "state://sync{?cursor}",
    "state://sync/{table_id}/history{?cursor}",
    "state://audit/recent{?cursor}",
    "state://knowledge/{item_id}",
    "state://users/{user_id}",
    "state://tables/{table_id}",
}
PROMPTS = {"triage_sync_failures", "review_pending_knowledge", "summarize_audit_activity"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_path(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """The seeded database on each backend in turn."""
    return seeded_location(tmp_path, backend, request)[0]


async def read_json(client, uri: str) -> object:
    result = await client.read_resource(uri)
    assert result.contents[0].mime_type == ("application/json" if uri == "state://schema" else "text/plain")
    return json.loads(unmarked(result.contents[0].text))


@BACKEND_MODES
async def test_resources_list_and_read(db_path: str, mode: str) -> None:
    async with connect(db_path, mode) as client:
        assert {str(r.uri) for r in (await client.list_resources()).resources} == STATIC
        assert {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        } == TEMPLATES

        schema = await read_json(client, "state://schema")
        tables = {t["name"]: t for t in schema["tables"]}
        assert set(TABLE_DESCRIPTIONS) <= set(tables)
        assert all(col["description"] for t in tables.values() for col in t["columns"])
        users = {c["name"]: c for c in tables["users"]["columns"]}
        assert users["password_hash"]["secret"] is True
        assert users["email"]["type"] in ("VARCHAR", "character varying")  # the engine's own name
        assert schema["database"] == ("PostgreSQL" if db_path.startswith("postgresql://") else "DuckDB")

        overview = await read_json(client, "state://sync")
        assert overview["total"] == 2 and overview["by_status"]["error"] == 1 and not overview["has_more"]
        assert [t["table_id"] for t in overview["items"]] == ["customers", "orders"]

        state = await read_json(client, "state://sync/orders")
        assert state["rows"] == 120
        history = await read_json(client, "state://sync/orders/history")
        assert history["total"] == 2 and [r["rows"] for r in history["items"]] == [120, 100]

        item = await read_json(client, "state://knowledge/km_1")
        assert (item["title"], item["upvotes"], item["downvotes"]) == ("Revenue definition", 1, 1)

        user = await read_json(client, f"state://users/{ANA}")
        assert user["user"]["role"] == "admin" and user["dataset_permissions"][0]["access"] == "write"

        table = await read_json(client, "state://tables/orders")
        assert table["profile"]["profile"]["row_count"] == 120 and table["sync_state"]["rows"] == 120

        recent = await read_json(client, "state://audit/recent")
        assert recent["items"][0]["action"] == "seeded"


async def test_paged_resources_page_with_the_tools_cursor(db_path: str) -> None:
    """state://sync, a table's history and the audit log page like their tools: cursor in the URI."""
    async with connect(db_path) as client:
        for n in range(120):  # more audit entries than a page, and more history runs
            await client.call_tool("record_sync", {"table_id": "orders", "rows": n})
        for uri, tool, args in (
            ("state://audit/recent", "query_audit_log", {"limit": 50}),
            ("state://sync/orders/history", "get_sync_history", {"table_id": "orders", "limit": 50}),
        ):
            first = await read_json(client, uri)
            assert first["has_more"] and len(first["items"]) == 50 and first["total"] >= 120
            listed = (await client.call_tool(tool, args)).structured_content
            assert listed["next_cursor"] == first["next_cursor"]  # one page shape, one cursor
            seen = [item["seq"] for item in first["items"]]
            cursor = first["next_cursor"]
            await client.call_tool("record_sync", {"table_id": "orders", "rows": 1})  # writes between pages
            while cursor:
                following = await read_json(client, f"{uri}?cursor={cursor}")
                seen += [item["seq"] for item in following["items"]]
                cursor = following["next_cursor"]
                assert following["has_more"] == (cursor is not None)
            assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == first["total"]
        overview = await read_json(
            client,
            "state://sync?cursor="
            + (await client.call_tool("list_sync_states", {"limit": 1})).structured_content["next_cursor"],
        )
        assert [t["table_id"] for t in overview["items"]] == ["orders"] and not overview["has_more"]
        with pytest.raises(MCPError, match="cursor"):
            await client.read_resource("state://audit/recent?cursor=not-a-cursor")


@BACKEND_MODES
async def test_missing_resources_are_errors(db_path: str, mode: str) -> None:
    async with connect(db_path, mode) as client:
        for uri in (
            "state://sync/nope",
            "state://knowledge/nope",
            "state://users/nope",
            "state://tables/nope",
        ):
            with pytest.raises(MCPError, match=r"no .* 'nope' exists"):
                await client.read_resource(uri)


async def test_template_ids_complete(db_path: str) -> None:
    async with connect(db_path) as client:
        done = await client.complete(
            ResourceTemplateReference(uri="state://sync/{table_id}"), {"name": "table_id", "value": "or"}
        )
        assert done.completion.values == ["orders"]
        done = await client.complete(
            ResourceTemplateReference(uri="state://users/{user_id}"), {"name": "user_id", "value": ""}
        )
        assert ANA in done.completion.values and len(done.completion.values) == 4
        done = await client.complete(
            ResourceTemplateReference(uri="state://knowledge/{item_id}"), {"name": "item_id", "value": "km_"}
        )
        assert done.completion.values == ["km_1", "km_2", "km_del"]
        done = await client.complete(
            PromptReference(name="summarize_audit_activity"), {"name": "since", "value": "2"}
        )
        assert done.completion.values == ["24h"]


@BACKEND_MODES
async def test_prompts(db_path: str, mode: str) -> None:
    async with connect(db_path, mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == PROMPTS
        assert [a.name for a in prompts["summarize_audit_activity"].arguments] == ["since"]

        triage = prompt_text(await client.get_prompt("triage_sync_failures"))
        assert "customers" in triage and "source timed out" in triage and "get_sync_history" in triage

        review = prompt_text(await client.get_prompt("review_pending_knowledge"))
        assert "km_1" in review and "set_knowledge_status" in review and "km_2" not in review

        summary = prompt_text(await client.get_prompt("summarize_audit_activity", {"since": "2025-01-01"}))
        assert '"seeded":1' in summary
        recent = prompt_text(await client.get_prompt("summarize_audit_activity", {"since": "1h"}))
        assert '"entries":0' in recent
        with pytest.raises(MCPError, match="since must be"):
            await client.get_prompt("summarize_audit_activity", {"since": "last tuesday"})


async def test_instructions(db_path: str) -> None:
    async with connect(db_path) as client:
        instructions = client.instructions or ""
    assert "state://schema" in instructions and "next_cursor" in instructions
    assert len(instructions.splitlines()) <= 6
