"""One state file, many clients (``mcp_state.sharing``), with real processes on real files.

A server keeps the file open between calls and lets go when another process asks; a read-only
server opens it read-only; a holder killed with ``kill -9`` loses nothing acknowledged and the
others carry on; the commands refuse a missing file and name where it was looked for.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fault_support import RawStdio, ServeProcess, query

from mcp_state.cli import main
from mcp_state.db import Database, connect
from mcp_state.errors import DatabaseUnavailableError
from mcp_state.repositories import AuditRepository
from mcp_state.sharing import ask, default_db_path, request_path

LOCK_WAIT = "5"


def call(raw: RawStdio, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    sent = raw.call_tool(tool, args)
    answer = raw.responses.get(timeout=60)
    assert answer is not None and answer["id"] == sent, answer
    return answer["result"]


def record(raw: RawStdio, table: str, n: int) -> bool:
    args = {"table_id": table, "rows": n, "file_size_bytes": n, "hash": f"{table}{n}"}
    result = call(raw, "record_sync", args)
    assert not result.get("isError") or "held by another process" not in result["content"][0]["text"]
    return not result.get("isError")


def started(db_path: Path, tmp_path: Path, *flags: str, **env: str) -> tuple[ServeProcess, RawStdio]:
    server = ServeProcess(
        db_path, "stdio", tmp_path / "logs", flags=flags, MCP_STATE_LOCK_TIMEOUT=LOCK_WAIT, **env
    )
    raw = RawStdio(server)
    raw.initialize()
    return server, raw


# -- which file -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["serve", "--read-only"],
        ["token", "list"],
        ["token", "create", "--actor", "a", "--scope", "read"],
        ["query", "SELECT 1"],
        ["schema"],
        ["export", "--to", "out"],
    ],
)
def test_each_command_refuses_a_missing_file_and_says_how_to_make_one(command, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "state.duckdb"
    assert main([*command, "--db", str(missing)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"no database at {missing}" in error
    assert "mcp-state demo" in error and "mcp-state migrate" in error and "serve --create" in error
    assert not missing.parent.exists()  # nothing created on the way


def test_the_default_file_is_in_the_user_data_folder_not_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    expected = tmp_path / "xdg" / "mcp-state" / "state" / "system.duckdb"
    assert default_db_path() == expected
    assert main(["token", "list"]) == 1
    assert f"no database at {expected}" in capsys.readouterr().err
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))  # DATA_DIR, when given, still decides
    assert default_db_path() == tmp_path / "d" / "state" / "system.duckdb"


def test_a_read_only_database_is_never_created_and_never_written(tmp_path):
    path = tmp_path / "state.duckdb"
    with pytest.raises(DatabaseUnavailableError, match="no database at"):
        AuditRepository(Database(path, read_only=True)).count()
    assert not path.exists()
    with Database(path) as db:
        AuditRepository(db).log(action="kept")
    db = Database(path, read_only=True)
    try:
        assert AuditRepository(db).count() == 1
        with pytest.raises(Exception, match="read-only"):
            AuditRepository(db).log(action="refused")
    finally:
        db.close()


# -- taking turns ------------------------------------------------------------------------------------
def test_when_asked_the_calls_in_flight_finish_nested_ones_included_then_the_file_is_let_go(tmp_path):
    path = tmp_path / "state.duckdb"
    opens: list[object] = []
    db = Database(path, idle_release=None, on_open=opens.append)
    AuditRepository(db).log(action="a")
    try:
        with db.session() as cursor:
            ask(str(path))  # as another process that found the file locked would
            deadline = time.monotonic() + 10
            while db.is_open and time.monotonic() < deadline:  # seen within a poll or two
                time.sleep(0.01)
            assert not db.is_open
            AuditRepository(db).log(action="nested")  # this thread's nested operation goes on
            assert cursor.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)
        assert len(opens) == 1
        assert AuditRepository(db).count() == 2  # the file was let go: opened again
        assert len(opens) == 2
    finally:
        db.close()


# -- taking turns, with real processes -------------------------------------------------------------
@pytest.mark.slow
def test_a_server_keeps_the_file_and_lets_go_when_asked(tmp_path):
    db_path = tmp_path / "state.duckdb"
    connect(db_path).close()
    server, raw = started(db_path, tmp_path)
    try:
        assert record(raw, "a", 1)
        time.sleep(1.0)  # a pause: the file stays open (no reopen on the next call)
        with pytest.raises(Exception, match="held by another process"):
            connect(db_path, wait=0)
        waited = time.monotonic()
        conn = connect(db_path, wait=10)  # asking: the server lets go at once
        waited = time.monotonic() - waited
        try:
            assert conn.execute("SELECT rows FROM sync_state WHERE table_id = 'a'").fetchone() == (1,)
        finally:
            conn.close()
        assert waited < 5.0  # well short of the 10 s lock wait
        assert not request_path(str(db_path)).exists()  # the request was answered
        assert record(raw, "a", 2)  # and the server takes the file back when it needs it
    finally:
        server.close()


@pytest.mark.slow
def test_a_read_only_server_beside_a_writer(tmp_path):
    db_path = tmp_path / "state.duckdb"
    connect(db_path).close()
    writer, raw_writer = started(db_path, tmp_path, MCP_STATE_ACTOR="w")
    reader, raw_reader = started(db_path, tmp_path, "--read-only")
    try:
        for n in range(1, 4):
            assert record(raw_writer, "t", n)
            seen = call(raw_reader, "get_sync_state", {"table_id": "t"})
            assert not seen.get("isError"), seen
            assert seen["structuredContent"]["rows"] == n  # the reader sees each acknowledged write
        tools = call(
            raw_reader, "record_sync", {"table_id": "t", "rows": 9, "file_size_bytes": 9, "hash": "x"}
        )
        assert tools.get("isError")  # no writing tool on a read-only server
    finally:
        reader.close()
        writer.close()
    assert query(db_path, "SELECT rows FROM sync_history ORDER BY rows") == [(1,), (2,), (3,)]


@pytest.mark.slow
def test_a_holder_killed_with_sigkill_while_others_are_busy(tmp_path):
    db_path = tmp_path / "state.duckdb"
    connect(db_path).close()
    (a, raw_a), (b, raw_b) = started(db_path, tmp_path), started(db_path, tmp_path)
    acked: dict[str, list[int]] = {"a": [], "b": []}
    gone: dict[str, str] = {}
    stop = threading.Event()

    def busy(raw: RawStdio, table: str, first: int, last: int) -> None:
        for n in range(first, last + 1):
            if stop.is_set():
                return
            try:
                if record(raw, table, n):
                    acked[table].append(n)
            except AssertionError as exc:  # no answer: the server is gone
                gone[table] = str(exc)[:300]
                return

    busy(raw_a, "a", 1, 3)  # a holds the file now
    workers = [threading.Thread(target=busy, args=(raw_b, "b", 1, 10_000))]
    workers.append(threading.Thread(target=busy, args=(raw_a, "a", 4, 10_000)))
    try:
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        os.kill(a.pid, signal.SIGKILL)  # whether it holds the file right now or waits for it
        a.popen.wait(timeout=30)
        before = len(acked["b"])
        time.sleep(3.0)
        assert len(acked["b"]) > before + 3, "the other server did not carry on"
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        b.close()
        a.close()
    assert list(gone) == ["a"], gone
    assert len(acked["a"]) > 3
    history = {
        table: {row[0] for row in query(db_path, "SELECT rows FROM sync_history WHERE table_id = ?", [table])}
        for table in ("a", "b")
    }
    assert set(acked["a"]) <= history["a"] and set(acked["b"]) <= history["b"]


# -- docs/sharing.md shows what the commands print ------------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "sharing.md"


@pytest.mark.slow
def test_the_console_examples_print_what_the_page_shows(tmp_path):
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 3
    for block in blocks:  # in order, in one folder: refused, created, served read-only
        command, *shown = block.strip().splitlines()
        assert command.startswith("$ mcp-state ")
        done = subprocess.run(
            [sys.executable, "-m", "mcp_state", *shlex.split(command[len("$ mcp-state ") :])],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        printed = (done.stdout + done.stderr).splitlines()
        assert len(printed) == len(shown), printed
        for want, got in zip(shown, printed, strict=True):
            assert re.fullmatch(".*".join(map(re.escape, want.split("…"))), got), (want, got)
