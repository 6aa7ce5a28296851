"""docs/recovery.md shows what the commands really print: every command in it is run here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "recovery.md"

pytestmark = pytest.mark.slow

# As the reader's shell the page describes: `export DATA_DIR=data` in the application's folder.
ENV = {**os.environ, "DATA_DIR": "data"}


def console_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of the console blocks, with the lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        for line in block.strip().splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line.strip())
    return steps


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = shlex.split(command)
    assert args[0] == "mcp-state", command
    return subprocess.run(
        [sys.executable, "-m", "mcp_state", *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )


def test_the_python_example_reads_the_archive_the_commands_wrote(tmp_path):
    text = DOC.read_text()
    steps = console_blocks(text)
    assert [command.split()[1] for command, _ in steps] == [
        "demo",
        "backup",
        "verify",
        "restore",
        "restore",
        "recover",
        "audit",
        "audit",
        "query",
        "query",
    ]
    # tests/test_docs.py compares what each prints; here they only set up the Python example.
    for command, _shown in steps:
        run(command, tmp_path)
    # The Python example reads the archive the command wrote.
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)  # type: ignore[union-attr]
    expected = code.split("# ", 1)[1].strip()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == expected, done.stderr


def test_the_cron_line_takes_a_timestamped_backup(tmp_path):
    line = next(line for line in DOC.read_text().splitlines() if line.startswith("0 2 * * * "))
    command = line.split(" ", 5)[5].split(" && ", 1)[1]  # without the schedule and the cd
    assert run("mcp-state demo --data-dir data", tmp_path).returncode == 0
    shell = command.replace("mcp-state ", f"{shlex.quote(sys.executable)} -m mcp_state ")
    done = subprocess.run(
        shell, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV
    )
    assert done.returncode == 0, done.stderr
    backups = list((tmp_path / "backups").glob("system-*.duckdb"))
    assert len(backups) == 1 and run(f"mcp-state verify --db {backups[0]}", tmp_path).returncode == 0
