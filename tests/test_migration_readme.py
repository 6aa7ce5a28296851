"""The migration page (docs/migration.md) shows what the commands really print, also where a
file must be broken first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from migration_support import edit_json, legacy_copy

pytestmark = pytest.mark.slow  # runs the CLI and Python in processes

PAGE = Path(__file__).resolve().parent.parent / "docs" / "migration.md"


def section() -> str:
    return PAGE.read_text()


def console_blocks() -> list[tuple[str, list[str]]]:
    """Each ``console`` block: its command and the lines shown ("..." stands for lines left out)."""
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", section(), re.DOTALL):
        lines = [line.strip() for line in block.strip().splitlines()]
        lines = [line for line in lines if line != "<!-- console: legacy -->"]
        assert lines[0].startswith("$ mcp-state ")
        blocks.append((lines[0][2:], lines[1:]))
    return blocks


def shell(cwd: Path, command: str) -> list[str]:
    args = command.split()[1:]
    done = subprocess.run([sys.executable, "-m", "mcp_state", *args], cwd=cwd, capture_output=True, text=True)
    return [line.strip() for line in (done.stdout + done.stderr).splitlines()]


def assert_shown(shown: list[str], printed: list[str]) -> None:
    """Every line shown appears in the output, in order; "..." skips any number of lines."""
    position = 0
    for line in shown:
        if line == "...":
            continue
        assert line in printed[position:], f"{line!r} is not printed (after line {position}): {printed}"
        position = printed.index(line, position) + 1


def test_the_console_examples_print_what_the_readme_shows(tmp_path):
    blocks = console_blocks()
    assert [command for command, _ in blocks] == [
        "mcp-state migrate --data-dir ./data --dry-run",
        "mcp-state migrate --data-dir ./data",
        "mcp-state migrate --data-dir ./data",
        "mcp-state migrate --data-dir ./data --skip-invalid",
    ]
    good = tmp_path / "good"
    good.mkdir()
    legacy_copy(good, "data")
    for command, shown in blocks[:2]:  # a dry run, then the migration
        assert_shown(shown, shell(good, command))
    bad = tmp_path / "bad"
    bad.mkdir()
    edit_json(
        legacy_copy(bad, "data") / "corporate-memory/votes.json",
        lambda d: d["k1"].update({"petr@acme.com": 5}),
    )
    for command, shown in blocks[2:]:  # stopped by a vote of 5, then skipping it
        assert_shown(shown, shell(bad, command))


def test_the_python_example_prints_what_its_comments_say(tmp_path):
    code = re.search(r"```python\n(.*?)```", section(), re.DOTALL).group(1)
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    legacy_copy(tmp_path, "data")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected
