"""Compacted tool schemas validate exactly what the original schemas validate."""

from __future__ import annotations

import jsonschema
import pytest
from mcp.server.mcpserver import MCPServer

from mcp_state.server import ServerSettings, build_server
from mcp_state.server.shapes import compact_schema

pytestmark = pytest.mark.anyio

PROBES = [None, "", "x", 0, 7, -1, 1.5, True, [], ["a"], [1], {}, {"a": 1}, "2026-01-01T00:00:00Z"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_every_schema_accepts_and_rejects_the_same_values(tmp_path) -> None:
    server = build_server(ServerSettings(db_path=str(tmp_path / "s.duckdb")))
    original = {tool.name: tool for tool in await MCPServer.list_tools(server)}
    compacted = {tool.name: tool for tool in await server.list_tools()}
    assert set(original) == set(compacted)
    for name, tool in original.items():
        for attr in ("input_schema", "output_schema"):
            before, after = getattr(tool, attr), getattr(compacted[name], attr)
            if before is None:
                assert after is None
                continue
            jsonschema.Draft202012Validator.check_schema(after)
            assert len(str(after)) < len(str(before)) or "title" not in str(before)
            for prop, sub in before.get("properties", {}).items():
                assert prop in after["properties"], f"{name}.{attr} lost property {prop}"
                old = jsonschema.Draft202012Validator({**sub, "$defs": before.get("$defs", {})})
                new = jsonschema.Draft202012Validator(
                    {**after["properties"][prop], "$defs": after.get("$defs", {})}
                )
                for probe in PROBES:
                    assert old.is_valid(probe) == new.is_valid(probe), (name, attr, prop, probe)


def test_a_property_called_title_survives() -> None:
    schema = {
        "title": "Item",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "title": "Tags",
            },
            "role": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]},
        },
        "required": ["title"],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            # Nullable types stay anyOf: type arrays fail strict portability checks (Inspector --strict).
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            "role": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]},
        },
        "required": ["title"],
    }
