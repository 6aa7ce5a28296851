"""MCP Inspector's CLI against ``mcp-state serve``: tools/list (strict), tools/call, resources/read,
prompts/get. Inspector gets a temporary HOME (its config and state files stay out of yours);
npm keeps its usual package cache, so only the first run downloads Inspector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_support import seeded_copy, unmarked

from mcp_state.db import Database
from mcp_state.repositories.audit import AuditRepository

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"

pytestmark = pytest.mark.slow


def inspect(npx: str, home: Path, db_path: Path, *method: str) -> dict:
    env = {
        **os.environ,
        "HOME": str(home),
        "npm_config_cache": os.environ.get("npm_config_cache", str(Path.home() / ".npm")),  # noqa: SIM112
        "npm_config_update_notifier": "false",
    }
    done = subprocess.run(
        [
            npx,
            "-y",
            INSPECTOR,
            "--cli",
            "-e",
            "MCP_STATE_ACTOR=inspector",
            "-e",
            f"PYTHONPATH={Path(__file__).resolve().parent.parent}",  # this checkout, installed or not
            sys.executable,
            "-m",
            "mcp_state",
            "serve",
            "--db",
            str(db_path),
            *method,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # --strict: the portability check of input and output schemas finds nothing to warn about.
    assert "Warning" not in done.stderr and "warnings across" not in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_inspector_cli(npx: str, tmp_path: Path) -> None:
    db_path, _ = seeded_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()

    listed = inspect(npx, home, db_path, "--method", "tools/list", "--strict")
    assert len(listed["tools"]) == 46

    called = inspect(
        npx,
        home,
        db_path,
        "--method",
        "tools/call",
        "--tool-name",
        "get_sync_state",
        "--tool-arg",
        "table_id=orders",
    )
    assert called["isError"] is False and called["structuredContent"]["rows"] == 120

    changed = inspect(
        npx,
        home,
        db_path,
        "--method",
        "tools/call",
        "--tool-name",
        "set_knowledge_status",
        "--tool-arg",
        "item_id=km_1",
        "status=approved",
    )
    assert changed["structuredContent"]["status"] == "approved"

    read = inspect(npx, home, db_path, "--method", "resources/read", "--uri", "state://sync/orders/history")
    assert json.loads(unmarked(read["contents"][0]["text"]))["total"] == 2

    prompt = inspect(
        npx,
        home,
        db_path,
        "--method",
        "prompts/get",
        "--prompt-name",
        "summarize_audit_activity",
        "--prompt-args",
        "since=30d",
    )
    assert "set_knowledge_status" in prompt["messages"][-1]["content"]["text"]

    with Database(db_path) as db:
        entry = AuditRepository(db).query(limit=1)[0]
    assert (entry["user_id"], entry["action"], entry["result"]) == ("inspector", "set_knowledge_status", "ok")
