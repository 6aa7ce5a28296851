"""docs/agent-tools.md shows what the commands really print, and names only real tools and arguments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from server_support import connect

DOC = Path(__file__).resolve().parent.parent / "docs" / "agent-tools.md"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# tests/test_docs.py runs every console example of this page and compares what it prints.


async def test_the_tools_and_arguments_named_exist(tmp_path: Path) -> None:
    text = DOC.read_text()
    async with connect(tmp_path / "d.duckdb") as client:
        tools = {t.name: set(t.input_schema["properties"]) for t in (await client.list_tools()).tools}
    calls = re.findall(r"`(\w+)\(([^)`]*)\)`", text)
    checked = 0
    for name, args in calls:
        if name in {"encode_cursor", "decode_cursor", "json_extract"} or args == 'name="Eva"':
            continue  # Python and SQL helpers; the example of an argument that does not exist
        assert name in tools, name
        for arg in re.findall(r"(\w+)(?:=[^,]*)?(?:,|$)", args.replace("\n", " ")):
            assert arg in tools[name], (name, arg)
        checked += 1
    assert checked >= 6
