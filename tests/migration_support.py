"""What the migration and export tests share: the legacy fixture, file edits, table dumps."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_state.db import connect
from mcp_state.legacy import KINDS

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy"
STATE_TABLES = tuple(dict.fromkeys(kind.table for kind in KINDS))


def legacy_copy(root: Path, name: str = "legacy") -> Path:
    """A private copy of the legacy fixture to edit."""
    target = root / name
    shutil.copytree(FIXTURE, target)
    return target


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    """Rewrite a JSON file after ``change(document)`` edited the document in place."""
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def append_lines(path: Path, *lines: str) -> None:
    with path.open("a") as out:
        for line in lines:
            out.write(line + "\n")


def dump(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every state table, raw (JSON as stored text, seq included), in a fixed order."""
    conn = connect(db_path, config={"access_mode": "READ_ONLY"}, migrate=False)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in STATE_TABLES
        }
    finally:
        conn.close()
