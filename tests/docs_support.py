"""Reading and running the shell examples of README.md and docs/*.md.

A ```console block holds ``$ command`` lines, each followed by the output it prints. A command
runs on as long as its quotes are open or its line ends in a backslash. In the output, a line
that is only ``…`` (or ``...``) stands for any number of lines, and ``…`` inside a line for any
text on that line; the rest must match what the command prints (stdout and stderr, as a
terminal shows them), line for line, trailing spaces aside.

Where each block runs is set by an HTML comment on the line before it:

- (none): the page's folder, shared by its blocks in order, as a reader following the page
  would. It starts with the demo database at ``data/state/system.duckdb`` (``DATA_DIR`` is
  that ``data``), made by ``mcp-state demo``.
- ``<!-- console: fresh -->``: a new folder with a new demo database, used by the blocks after it.
- ``<!-- console: legacy -->``: a new folder holding the legacy JSON sample in ``data/`` and no
  database, for migration examples.
- ``<!-- console: postgres -->``: like ``fresh``, plus an empty PostgreSQL database whose URL is
  in ``$DB`` (one per page: its blocks share it), on the server ``MCP_STATE_TEST_POSTGRES`` names;
  without one, the page is skipped (and fails under CI), as every PostgreSQL test.
- ``<!-- console: ci -->``: commands that CI runs (``.ci/run`` has each word for word), such as
  installing and the test suite; they are not run here.
- ``<!-- console: not run: REASON -->``: shown, not run (say why: a client application or a
  server that must be running); use it for as little as possible.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "mcp_state" / "sample_data"
ELIDE_LINE = {"…", "..."}
_BLOCK = re.compile(
    r"(?:<!--\s*console:\s*(?P<mark>[^>]*?)\s*-->[ \t]*\n[ \t]*)?```console\n(?P<body>.*?)```", re.DOTALL
)


@dataclass
class Example:
    command: str
    expected: list[str]


@dataclass
class Block:
    page: str
    line: int
    mark: str
    examples: list[Example] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page under docs/, including pages this test has never seen."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        block = Block(
            str(page.relative_to(ROOT)),
            text.count("\n", 0, match.start("body")),
            (match["mark"] or "").strip(),
        )
        lines = textwrap.dedent(match["body"]).strip("\n").split("\n")  # a block in a list is indented
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise ValueError(
                    f"{block.id}: a console block must start each command with '$ ': {lines[i]!r}"
                )
            command = lines[i][2:]
            while not _complete(command) and i + 1 < len(lines):
                i += 1
                command += "\n" + lines[i]
            i += 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i].rstrip())
                i += 1
            block.examples.append(Example(command, expected))
        found.append(block)
    return found


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # a quote still open
        return False
    return True


def matches(expected: list[str], printed: list[str]) -> bool:
    """Whether ``printed`` is what ``expected`` shows (``…`` lines and ``…`` in lines elide)."""
    if not expected:
        return not printed
    head, rest = expected[0], expected[1:]
    if head in ELIDE_LINE:
        return any(matches(rest, printed[skip:]) for skip in range(len(printed) + 1))
    return bool(printed) and _line_matches(head, printed[0]) and matches(rest, printed[1:])


def _line_matches(expected: str, printed: str) -> bool:
    if "…" not in expected:
        return expected == printed
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, printed) is not None


class Workspace:
    """A folder where a page's blocks run, with ``mcp-state`` on PATH running this checkout."""

    def __init__(self, root: Path, kind: str, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True)
        bin_dir = root / ".bin"
        bin_dir.mkdir()
        launcher = bin_dir / "mcp-state"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mcp_state "$@"\n')
        launcher.chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "DATA_DIR": str(root / "data"),
            "HOME": str(root / "home"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "COLUMNS": "100",
            **(extra_env or {}),
        }
        # npx (MCP Inspector) keeps using the usual package cache, so it downloads only once.
        self.env["npm_config_cache"] = os.environ.get("npm_config_cache", str(Path.home() / ".npm"))  # noqa: SIM112
        self.env["npm_config_update_notifier"] = "false"
        if kind == "legacy":
            shutil.copytree(SAMPLE, root / "data")
        else:
            done = self.run("mcp-state demo --db data/state/system.duckdb")
            assert done.returncode == 0, done.stdout

    def run(self, command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
