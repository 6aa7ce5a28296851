"""``mcp-state backup`` while a real ``mcp-state serve`` takes a steady stream of writes: over
stdio (one raw client, ``WINDOW`` calls in flight) and over HTTP (``WINDOW`` SDK clients).

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

import anyio
import duckdb
import pytest
from fault_support import RawStdio, ServeProcess, http_client, make_tokens, serving

pytestmark = pytest.mark.slow

WINDOW = 4  # calls in flight (stdio) or clients (HTTP): a steady stream, not a flood
BEFORE = 30  # acknowledged writes before the backup starts
AFTER = 20  # acknowledged writes after it returned
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


class Backup:
    """``mcp-state backup`` on a thread, started once; when it ran, and what it printed."""

    def __init__(self, path: Path, to: Path) -> None:
        self.path, self.to = path, to
        self.start = self.end = 0.0
        self.done: subprocess.CompletedProcess[str] | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.start = time.monotonic()
        self.done = cli("backup", "--db", str(self.path), "--to", str(self.to))
        self.end = time.monotonic()

    def note(self, acked: dict[str, float]) -> bool:
        """After each acknowledged write: start the backup after ``BEFORE``; True to stop."""
        if len(acked) == BEFORE:
            self.thread.start()
        return self.end > 0 and sum(t > self.end for t in acked.values()) >= AFTER


def stream_stdio(server: ServeProcess, backup: Backup) -> dict[str, float]:
    """Writes with ``WINDOW`` calls in flight over a raw stdio pipe; key -> when acknowledged."""
    raw = RawStdio(server)
    raw.initialize()
    acked: dict[str, float] = {}
    in_flight: dict[int, str] = {}
    n = 0
    deadline = time.monotonic() + DEADLINE
    stop = False
    while not stop:
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
        stop = backup.note(acked)
    for _ in in_flight:  # the last answers, so that the source is final
        message = raw.responses.get(timeout=DEADLINE)
        assert message is not None and not message["result"].get("isError"), message
    return acked


def stream_http(server: ServeProcess, token: str, backup: Backup) -> dict[str, float]:
    """Writes from ``WINDOW`` SDK clients over HTTP, each one call at a time."""
    acked: dict[str, float] = {}
    counter = iter(range(10**9))
    stop = anyio.Event()

    async def client() -> None:
        async with http_client(server.url, token, read_timeout=DEADLINE) as session:
            while not stop.is_set():
                n = next(counter)
                tool, arguments = write(n)
                result = await session.call_tool(tool, arguments)
                assert not result.is_error, (n, result.content)
                acked[f"w{n}"] = time.monotonic()
                if backup.note(acked):
                    stop.set()

    async def main() -> None:
        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as group:
                for _ in range(WINDOW):
                    group.start_soon(client)

    anyio.run(main)
    return acked


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_backup_during_a_steady_write_stream_to_a_running_server(tmp_path, transport):
    path = tmp_path / "state" / "system.duckdb"
    token = make_tokens(path, {"loader": "write"})["loader"]  # creates the file and its schema
    backup = Backup(path, tmp_path / "backups" / "live.duckdb")
    with serving(path, transport, tmp_path / "logs") as server:
        http = transport == "http"
        acked = stream_http(server, token, backup) if http else stream_stdio(server, backup)
        backup.thread.join()
    done = backup.done
    assert done is not None and done.returncode == 0, done and done.stderr
    assert "Backed up" in done.stdout and "Traceback" not in done.stderr
    during = sum(backup.start < t < backup.end for t in acked.values())

    copy, final = contents(backup.to), contents(path)
    before = {key for key, t in acked.items() if t < backup.start}
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
    done = cli("restore", "--from", str(backup.to), "--db", str(restored))
    assert done.returncode == 0, done.stderr
    checked = cli("verify", "--db", str(restored))
    assert checked.returncode == 0, checked.stderr
    assert contents(restored) == copy
    print(
        f"{transport}: backup took {backup.end - backup.start:.2f}s; {len(acked)} writes "
        f"acknowledged, {during} of them while the backup ran; {len(in_copy)} in the copy"
    )
