"""docs/agent-tools.md shows what the commands really print, and names only real tools and arguments."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from server_support import connect

DOC = Path(__file__).resolve().parent.parent / "docs" / "agent-tools.md"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def console_blocks() -> list[tuple[str, list[str]]]:
    """Each ``console`` block: its command and the lines shown ("…" stands for lines left out)."""
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.DOTALL):
        lines = [line.strip() for line in block.strip().splitlines()]
        assert lines[0].startswith("$ mcp-state "), lines[0]
        blocks.append((lines[0][2:], lines[1:]))
    return blocks


def test_the_console_examples_print_what_the_page_shows(tmp_path: Path) -> None:
    blocks = console_blocks()
    assert [command for command, _ in blocks][:2] == [
        "mcp-state serve --help",
        "mcp-state serve --max-result-chars 500",
    ]
    for command, shown in blocks:
        done = subprocess.run(
            [sys.executable, "-m", "mcp_state", *command.split()[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "80"},
            timeout=60,
        )
        printed = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
        position = 0
        for line in shown:
            if line == "…":
                continue
            assert line in printed[position:], f"{command}: {line!r} is not printed: {printed}"
            position = printed.index(line, position) + 1


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
