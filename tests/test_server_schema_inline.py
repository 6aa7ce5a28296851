"""compact_schema puts a $defs entry used once in place of its $ref, and only then."""

from __future__ import annotations

import jsonschema
import pytest
from mcp.server.mcpserver import MCPServer

from mcp_state.server import ServerSettings, build_server
from mcp_state.server.app import closed
from mcp_state.server.shapes import compact_schema, inline_single_refs

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ITEM = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_a_definition_used_once_is_inlined_with_its_annotations():
    schema = {
        "$defs": {"Item": ITEM},
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item", "description": "One item."}}
        },
    }
    assert inline_single_refs(schema) == {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {**ITEM, "description": "One item."}}},
    }


def test_a_definition_used_twice_or_recursively_stays_a_reference():
    twice = {
        "$defs": {"Item": ITEM},
        "properties": {"a": {"$ref": "#/$defs/Item"}, "b": {"$ref": "#/$defs/Item"}},
    }
    assert inline_single_refs(twice) == twice
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
    }
    recursive = {"$defs": {"Node": tree}, "properties": {"root": {"$ref": "#/$defs/Node"}}}
    assert inline_single_refs(recursive) == recursive


def test_a_reference_with_a_constraint_next_to_it_is_kept():
    schema = {"$defs": {"Item": ITEM}, "properties": {"a": {"$ref": "#/$defs/Item", "minProperties": 1}}}
    assert inline_single_refs(schema) == schema


async def test_every_tool_schema_validates_the_same_values_after_inlining(tmp_path) -> None:
    """Whole schemas this time (the per-property check is in test_server_schema_compact.py)."""
    server = build_server(ServerSettings(db_path=str(tmp_path / "s.duckdb")))
    original = {tool.name: tool for tool in await MCPServer.list_tools(server)}
    compacted = {tool.name: tool for tool in await server.list_tools()}
    probes = [
        {},
        {"items": [], "total": 0, "has_more": False, "next_offset": None},
        {"items": [{"table_id": "t"}], "total": 1, "has_more": False, "next_offset": None},
        {
            "columns": [{"name": "n", "type": "INTEGER"}],
            "rows": [[1]],
            "row_count": 1,
            "truncated": False,
            "limit": 100,
            "elapsed_ms": 1.0,
        },
        {
            "columns": [{"name": 1}],
            "rows": [],
            "row_count": 0,
            "truncated": False,
            "limit": 1,
            "elapsed_ms": 0,
        },
    ]
    for name, tool in original.items():
        for attr in ("input_schema", "output_schema"):
            before, after = getattr(tool, attr), getattr(compacted[name], attr)
            if before is None:
                continue
            if attr == "input_schema":  # refusing unknown arguments is meant to change validation
                before = closed(before)
            assert "$ref" not in str(after), (name, attr)
            old, new = jsonschema.Draft202012Validator(before), jsonschema.Draft202012Validator(after)
            for probe in probes:
                assert old.is_valid(probe) == new.is_valid(probe), (name, attr, probe)
    assert compact_schema(None) is None
