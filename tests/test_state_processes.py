"""Several processes on one state file, with real processes.

DuckDB lets one process open a file read-write and refuses every other process. A process
that finds the file locked retries with backoff for a bounded, configurable time and then
fails naming the holder's PID; a ``Database`` keeps the file open and lets go of it when
another process asks (``mcp_state.sharing``); a writer killed with ``kill -9`` loses no
acknowledged write. DuckDB only: PostgreSQL has no file to share (its processes: pg-ops' tests).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mcp_state.db import DEFAULT_LOCK_TIMEOUT, Database, connect, get_system_db, lock_timeout, system_db_path
from mcp_state.errors import DatabaseLockedError
from mcp_state.repositories import AuditRepository

HELPER = Path(__file__).parent / "helpers" / "state_proc.py"

pytestmark = pytest.mark.slow


class Proc:
    """A helper process whose stdout lines arrive on a queue (so reads can time out)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **(env or {})),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def expect(self, wanted: str, timeout: float = 30) -> None:
        line = self.lines.get(timeout=timeout)
        assert line == wanted, f"expected {wanted!r}, got {line!r}; stderr: {self._stderr()}"

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def remaining_lines(self) -> list[str]:
        """Every line still to come, up to EOF (call after the process has ended)."""
        self._reader.join(timeout=30)
        out = []
        while (line := self.lines.get(timeout=5)) is not None:
            out.append(line)
        return out

    def _stderr(self) -> str:
        if self.popen.poll() is None or self.popen.stderr is None:
            return "(still running)"
        return self.popen.stderr.read()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


def open_like_cli(path: Path, lock_wait: float) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, str(HELPER), "open", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, MCP_STATE_LOCK_TIMEOUT=str(lock_wait)),
    )
    return proc.returncode, json.loads(proc.stdout.splitlines()[-1]), proc.stderr


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "system.duckdb"


@pytest.mark.parametrize("lock_wait", [0.5, 1.5])
def test_a_locked_file_fails_after_the_configured_wait_naming_the_holder(db_path, lock_wait):
    holder = Proc("hold", str(db_path), "60")
    try:
        holder.expect("ready")
        code, info, stderr = open_like_cli(db_path, lock_wait)
    finally:
        holder.stop()
    assert code == 3, stderr
    assert lock_wait <= info["waited"] < lock_wait + 3
    assert info["cpu"] < 0.5 * info["waited"], "the wait should back off, not spin"
    assert f"PID {holder.pid}" in stderr
    assert str(db_path) in stderr
    assert "MCP_STATE_LOCK_TIMEOUT" in stderr  # and what to do about it


def test_every_way_of_opening_reports_the_lock_the_same(db_path, monkeypatch):
    holder = Proc("hold", str(db_path), "60")
    try:
        holder.expect("ready")
        monkeypatch.setenv("DATA_DIR", str(db_path.parent.parent))
        monkeypatch.setenv("MCP_STATE_LOCK_TIMEOUT", "0.3")
        assert system_db_path() == db_path
        openers = {
            "connect": lambda: connect(db_path, wait=0.3),
            "get_system_db": get_system_db,
            "Database.open": lambda: Database(db_path, lock_wait=0.3).open(),
            "repository call": lambda: AuditRepository(Database(db_path)).query(),
        }
        for name, opener in openers.items():
            started = time.monotonic()
            with pytest.raises(DatabaseLockedError, match=f"PID {holder.pid}"):
                opener()
            assert 0.3 <= time.monotonic() - started < 5.0, name
    finally:
        holder.stop()


def test_the_lock_wait_defaults_to_ten_seconds_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv("MCP_STATE_LOCK_TIMEOUT", raising=False)
    assert lock_timeout() == DEFAULT_LOCK_TIMEOUT == 10.0
    monkeypatch.setenv("MCP_STATE_LOCK_TIMEOUT", "2.5")
    assert lock_timeout() == 2.5


def test_a_waiting_process_gets_in_once_the_holder_lets_go(db_path):
    holder = Proc("hold", str(db_path), "stdin", stdin=True)
    opener = None
    try:
        holder.expect("ready")
        opener = Proc("open", str(db_path), env={"MCP_STATE_LOCK_TIMEOUT": "30"})
        opener.expect("trying")
        time.sleep(0.8)  # the opener is now retrying against the held file
        holder.send("release")
        assert holder.popen.wait(timeout=30) == 0
        assert opener.popen.wait(timeout=30) == 0
        info = json.loads(opener.remaining_lines()[-1])
    finally:
        holder.stop()
        if opener is not None:
            opener.stop()
    assert info["opened"]
    assert 0.8 <= info["waited"] < 10, "it should have waited for the holder, then opened"


def test_a_serving_process_lets_go_when_asked_and_takes_it_back(db_path):
    server = Proc("idle", str(db_path), "60", stdin=True)  # no idle release within the test
    try:
        server.send("write a")
        server.expect("ok a")
        with pytest.raises(DatabaseLockedError):  # right after a write, the file is held...
            connect(db_path, wait=0)
        started = time.monotonic()
        conn = connect(db_path, wait=10)  # ...and let go as soon as another process asks
        waited = time.monotonic() - started
        try:
            assert [e["resource"] for e in AuditRepository(conn).query()] == ["a"]
        finally:
            conn.close()
        assert waited < 5  # well short of the 60 s idle release and the 10 s lock wait

        server.send("write b")  # the server opens the file again when it needs it
        server.expect("ok b")
        code, info, stderr = open_like_cli(db_path, 10)  # a CLI-like process gets in too
        assert code == 0, stderr
        assert info["audit"] == ["a", "b"]

        server.popen.stdin.close()
        assert server.popen.wait(timeout=30) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["database", "raw"])
@pytest.mark.parametrize("kill_after", [20, 200])
def test_a_writer_killed_with_sigkill_loses_no_acknowledged_write(db_path, kind, kill_after):
    writer = Proc("writer", str(db_path), kind)
    try:
        writer.expect("ready")
        for n in range(kill_after):
            writer.expect(f"ack {n}")
        os.kill(writer.pid, signal.SIGKILL)  # mid-stream: it is writing the next one
        assert writer.popen.wait(timeout=30) == -signal.SIGKILL
        acked = {kill_after - 1} | {int(line.split()[1]) for line in writer.remaining_lines()}
    finally:
        writer.stop()
    acked |= set(range(kill_after))

    conn = connect(db_path, wait=10)  # the file opens (the WAL is replayed)
    try:
        audit = [int(r[0]) for r in conn.execute("SELECT resource FROM audit_log").fetchall()]
        history = [r[0] for r in conn.execute("SELECT rows FROM sync_history").fetchall()]
        state = conn.execute("SELECT rows FROM sync_state WHERE table_id = 't'").fetchone()
        # No duplicates, and each transaction is there whole (its two rows) or not at all.
        assert len(audit) == len(set(audit))
        assert len(history) == len(set(history))
        assert set(audit) == set(history)
        # Every acknowledged write is there; at most the one in flight beyond them.
        assert acked <= set(audit)
        assert set(audit) - acked <= {max(acked) + 1}
        assert state is not None and state[0] == max(audit)
        # And the database keeps working.
        AuditRepository(conn).log(action="after-crash")
        assert AuditRepository(conn).count(action="after-crash") == 1
    finally:
        conn.close()
