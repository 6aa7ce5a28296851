"""``mcp-state backup`` while a real ``mcp-state serve`` (stdio) takes a steady stream of writes.

The backup asks the server to let go of the file (``mcp_state/sharing.py``), copies it after a
checkpoint, and the server takes the file back. Checked: the backup succeeds while writes go on,
every write acknowledged before the backup started is in the copy, the copy is the source as it
was at one commit (a prefix of the commit order, each write whole), and ``restore`` + ``verify``
of the copy give the same content.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fault_support import RawStdio, serving

from mcp_state.db import Database

pytestmark = pytest.mark.slow

WINDOW = 4  # calls in flight: a steady stream, not a flood
BEFORE = 60  # acknowledged writes before the backup starts
AFTER = 40  # acknowledged writes after it returned
DEADLINE = 30.0


def contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}
    finally:
        conn.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_state", *args], capture_output=True, text=True, timeout=60
    )


def write(n: int) -> tuple[str, dict[str, Any]]:
    """The n-th write: an audit event, or (every third) a knowledge item; each carries its key."""
    key = f"w{n}"
    if n % 3 == 2:
        return "create_knowledge_item", {"id": f"km-{key}", "title": f"item {key}", "tags": [key]}
    return "log_audit_event", {"action": "load", "resource": key, "params": {"n": n}}


def test_backup_during_a_steady_write_stream_to_a_running_server(tmp_path):
    path = tmp_path / "state" / "system.duckdb"
    with Database(path, idle_release=None):
        pass  # an empty state file, with its schema
    acked: dict[str, float] = {}  # key -> when its answer arrived (monotonic)
    backup_window: dict[str, float] = {}
    stop = threading.Event()
    with serving(path, "stdio", tmp_path / "logs") as server:
        raw = RawStdio(server)
        raw.initialize()
        in_flight: dict[int, str] = {}
        n = 0
        backup = tmp_path / "backups" / "live.duckdb"
        result: dict[str, subprocess.CompletedProcess[str]] = {}

        def take_backup() -> None:
            backup_window["start"] = time.monotonic()
            result["done"] = cli("backup", "--db", str(path), "--to", str(backup))
            backup_window["end"] = time.monotonic()

        taker = threading.Thread(target=take_backup)
        deadline = time.monotonic() + DEADLINE
        while not stop.is_set():
            assert time.monotonic() < deadline, f"no progress: {server.log()[-2000:]}"
            while len(in_flight) < WINDOW:
                tool, arguments = write(n)
                in_flight[raw.call_tool(tool, arguments)] = f"w{n}"
                n += 1
            message = raw.responses.get(timeout=DEADLINE)
            assert message is not None, f"the server stopped: {server.log()[-2000:]}"
            key = in_flight.pop(message["id"])
            assert "error" not in message and not message["result"].get("isError"), (key, message)
            acked[key] = time.monotonic()
            if len(acked) == BEFORE:
                taker.start()
            if "end" in backup_window and sum(t > backup_window["end"] for t in acked.values()) >= AFTER:
                stop.set()
        for _ in in_flight:  # the last answers, so that the source is final
            message = raw.responses.get(timeout=DEADLINE)
            assert message is not None and not message["result"].get("isError"), message
        taker.join()
    done = result["done"]
    assert done.returncode == 0, done.stderr
    assert "Backed up" in done.stdout and "Traceback" not in done.stderr
    during = sum(backup_window["start"] < t < backup_window["end"] for t in acked.values())

    copy, final = contents(backup), contents(path)
    before = {key for key, t in acked.items() if t < backup_window["start"]}
    events = {row[4]: row for row in copy["audit_log"] if row[3] == "load"}
    items = {row[0] for row in copy["knowledge_items"]}
    in_copy = set(events) | {item.removeprefix("km-") for item in items}
    assert before <= in_copy, sorted(before - in_copy)[:5]
    # The source at one commit: the copy's audit rows are exactly the source's first rows by
    # commit order, and each knowledge item is there with its audit row (one transaction).
    cut = max(row[8] for row in copy["audit_log"])
    assert copy["audit_log"] == [row for row in final["audit_log"] if row[8] <= cut]
    created = {row[4] for row in copy["audit_log"] if row[3] == "create_knowledge_item"}
    assert items == created
    assert copy["knowledge_items"] == [row for row in final["knowledge_items"] if row[0] in items]
    assert copy["knowledge_words"] == [row for row in final["knowledge_words"] if row[1] in items]

    restored = tmp_path / "restored" / "system.duckdb"
    done = cli("restore", "--from", str(backup), "--db", str(restored))
    assert done.returncode == 0, done.stderr
    checked = cli("verify", "--db", str(restored))
    assert checked.returncode == 0, checked.stderr
    assert contents(restored) == copy
    print(
        f"backup took {backup_window['end'] - backup_window['start']:.2f}s; {len(acked)} writes "
        f"acknowledged, {during} of them while the backup ran; {len(in_copy)} in the copy"
    )
