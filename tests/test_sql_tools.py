"""The ``sql`` toolset as an MCP client sees it: the tool surface, results, plans, schema, errors."""

from __future__ import annotations

import time

from sql_support import CANARIES, make_server, result_text, seeded_db_path, with_client

from mcp_state.sql.render import cell

# A snapshot of the surface: a change here shows in review.
SURFACE = {
    "sql_query": {
        "title": "Run a read-only SQL query",
        "inputs": {"sql": ("string", None, None, None), "limit": ("integer", 1, 10_000, 100)},
        "required": ["sql"],
        "outputs": ["columns", "rows", "row_count", "truncated", "limit", "elapsed_ms"],
    },
    "sql_schema": {
        "title": "List the tables SQL can read",
        "inputs": {"table": (None, None, None, None)},
        "required": [],
        "outputs": ["dialect", "schema", "tables", "note"],
    },
    "sql_explain": {
        "title": "Explain a read-only SQL query",
        "inputs": {"sql": ("string", None, None, None)},
        "required": ["sql"],
        "outputs": ["plan", "elapsed_ms"],
    },
}


def test_the_tool_surface(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    tools = with_client(make_server(path), lambda client: client.list_tools())
    seen = {}
    for tool in tools.tools:
        props = tool.input_schema["properties"]
        seen[tool.name] = {
            "title": tool.title,
            "inputs": {
                name: (p.get("type"), p.get("minimum"), p.get("maximum"), p.get("default"))
                for name, p in props.items()
            },
            "required": tool.input_schema.get("required", []),
            "outputs": tool.output_schema["required"],
        }
        annotations = tool.annotations
        assert annotations.read_only_hint is True and annotations.open_world_hint is False
        assert annotations.destructive_hint is False and annotations.title == tool.title
        assert tool.description and "\n" not in tool.description and len(tool.description) < 240
    assert seen == SURFACE


def test_a_query_returns_structured_rows_and_a_markdown_table(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    result = with_client(
        make_server(path),
        lambda client: client.call_tool(
            "sql_query", {"sql": "SELECT id, role FROM users ORDER BY id", "limit": 2}
        ),
    )
    assert not result.is_error
    data = result.structured_content
    assert data["columns"] == [{"name": "id", "type": "VARCHAR"}, {"name": "role", "type": "VARCHAR"}]
    assert data["rows"] == [["u1", "admin"], ["u2", "analyst"]]
    assert data["truncated"] is True and data["row_count"] == 2 and data["elapsed_ms"] > 0
    text = result.content[0].text
    assert "| id " in text and "| u2 " in text and "2 rows (truncated: more rows exist)" in text


def test_duplicate_column_names_are_kept_apart(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    result = with_client(
        make_server(path), lambda client: client.call_tool("sql_query", {"sql": "SELECT 1 AS id, 2 AS id"})
    )
    assert [c["name"] for c in result.structured_content["columns"]] == ["id", "id_2"]
    assert result.structured_content["rows"] == [[1, 2]]


def test_explain_shows_the_plan_without_running_the_query(tmp_path):
    path = seeded_db_path(tmp_path / "data")

    async def body(client):
        plan = await client.call_tool(
            "sql_explain", {"sql": "SELECT action, count(*) FROM audit_log GROUP BY ALL"}
        )
        started = time.monotonic()
        runaway = await client.call_tool("sql_explain", {"sql": "SELECT count(*) FROM range(1e13::BIGINT)"})
        seconds = time.monotonic() - started
        refused = [
            await client.call_tool("sql_explain", {"sql": sql})
            for sql in ("DELETE FROM users", "EXPLAIN ANALYZE SELECT 1", "SELECT * FROM main.users")
        ]
        return plan, runaway, seconds, refused

    plan, runaway, seconds, refused = with_client(make_server(path, timeout=5.0), body)
    assert not plan.is_error
    assert "audit_log" in plan.structured_content["plan"] and plan.content[0].text.startswith("```")
    assert not runaway.is_error and seconds < 1.0
    assert [r.is_error for r in refused] == [True, True, True]
    assert "[invalid_sql]" in refused[0].content[0].text


def test_schema_lists_the_views_with_descriptions_and_no_secret(tmp_path):
    path = seeded_db_path(tmp_path / "data")

    async def body(client):
        return (
            await client.call_tool("sql_schema", {}),
            await client.call_tool("sql_schema", {"table": "redacted.USERS"}),
            await client.call_tool("sql_schema", {"table": "passwords"}),
        )

    everything, users, missing = with_client(make_server(path), body)
    assert everything.structured_content["dialect"] == "DuckDB"  # PostgreSQL 15 on PostgreSQL
    assert everything.structured_content["note"].startswith("Write DuckDB SQL.")
    tables = {t["name"]: t for t in everything.structured_content["tables"]}
    assert "audit_log" in tables and tables["audit_log"]["description"].startswith("Append-only log")
    params = next(c for c in tables["audit_log"]["columns"] if c["name"] == "params")
    assert params == {"name": "params", "type": "JSON", "description": "JSON arguments, secrets removed."}
    (only,) = users.structured_content["tables"]
    columns = {c["name"] for c in only["columns"]}
    assert "has_password" in columns and not columns & {"password_hash", "setup_token", "reset_token"}
    assert "### users" in users.content[0].text
    assert (
        missing.is_error
        and "[not_found]" in missing.content[0].text
        and "audit_log" in missing.content[0].text
    )
    assert not any(c in result_text(r) for r in (everything, users, missing) for c in CANARIES)


def test_arguments_out_of_range_are_refused_by_the_schema(tmp_path):
    path = seeded_db_path(tmp_path / "data")

    async def body(client):
        return [
            await client.call_tool("sql_query", {"sql": "SELECT 1", "limit": 10_001}),
            await client.call_tool("sql_query", {"sql": ""}),
            await client.call_tool("sql_query", {"limit": 5}),
        ]

    assert all(r.is_error for r in with_client(make_server(path), body))


def test_markdown_cells_stay_on_one_line_and_escape_pipes():
    assert cell(None) == "NULL" and cell(True) == "true" and cell(1.5) == "1.5"
    assert cell("a|b\nc\td") == "a\\|b c d"
    assert cell({"k": [1, 2]}) == '{"k": [1, 2]}'
    assert cell("x" * 100, width=10) == "x" * 9 + "…"
