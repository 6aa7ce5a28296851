"""Fault suite: a full disk and a read-only directory, on open and on write.

Each case must end in a clear DatabaseUnavailableError, with earlier data intact and the
file opening afterwards. A full disk is a small tmpfs where this machine lets us mount one;
otherwise a process file-size limit (RLIMIT_FSIZE) plays the full disk. A read-only
directory is real for a process running as an unprivileged user (root ignores mode bits).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import duckdb
import pytest

from mcp_state.db import Database, connect
from mcp_state.errors import DatabaseUnavailableError
from mcp_state.repositories.audit import AuditRepository

NOBODY = 65534

WRITER = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    limit = int(os.environ.get("FSIZE_LIMIT", "0"))
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from mcp_state.db import Database
    from mcp_state.errors import StateError
    from mcp_state.repositories.audit import AuditRepository
    uid = int(os.environ.get("RUN_AS_UID", "-1"))
    if uid >= 0:  # after the imports: the interpreter's own files may not be readable by that user
        os.setgid(uid); os.setuid(uid)
    db = Database(sys.argv[1], idle_release=None, lock_wait=2)
    repo = AuditRepository(db)
    try:
        for i in range(int(sys.argv[2])):
            entry = repo.log(user_id="u", action="bulk", params={"i": i, "blob": "x" * int(sys.argv[3])})
            print(json.dumps({"acked": entry}), flush=True)
        print(json.dumps({"done": True}), flush=True)
    except StateError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
    except Exception as exc:
        print(json.dumps({"unexpected": type(exc).__name__, "message": str(exc)}), flush=True)
    db.close()
    """
)


def run_writer(db_path: Path, count: int, blob: int, **env: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(db_path), str(count), str(blob)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"writer printed nothing: {proc.stderr[-2000:]}"
    return lines


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs if this machine allows mounting one, else None."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True
        ).returncode
        == 0
    )
    yield mount_point if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _audit_ids(db_path: Path) -> list[str]:
    conn = duckdb.connect(str(db_path))
    try:
        return [row[0] for row in conn.execute("SELECT id FROM audit_log WHERE action = 'bulk'").fetchall()]
    finally:
        conn.close()


def test_full_disk_on_write_keeps_every_acknowledged_write(small_disk, tmp_path):
    if small_disk is not None:
        db_path = small_disk / "state.duckdb"
        env: dict[str, str] = {}
    else:  # the file-size limit plays the full disk
        db_path = tmp_path / "limited" / "state.duckdb"
        env = {"FSIZE_LIMIT": str(3 * 1024 * 1024)}
    # Earlier data, written while there was room.
    first = run_writer(db_path, 3, 1000)
    assert first[-1] == {"done": True}

    lines = run_writer(db_path, 500, 200_000, **env)
    failure = lines[-1]
    assert failure.get("error") == "DatabaseUnavailableError", lines[-3:]
    assert "not saved" in failure["message"] and "retry" in failure["message"]
    acked = [line["acked"] for line in lines if "acked" in line]
    assert len(acked) > 2

    if small_disk is not None:  # make room again, as an operator would
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    stored = _audit_ids(db_path)
    assert len(stored) == len(set(stored)), "duplicate rows after the failure"
    assert set(acked) | {line["acked"] for line in first if "acked" in line} <= set(stored)
    # Nothing beyond what was acknowledged: the failed entry was rolled back whole.
    assert len(stored) == len(acked) + 3
    # And the database keeps working.
    repo = AuditRepository(Database(db_path, idle_release=None))
    repo.log(user_id="u", action="after")
    assert repo.count(action="after") == 1
    repo.db.source.close()


def test_full_disk_on_open_is_a_clear_error(small_disk, tmp_path):
    if small_disk is None:  # no tmpfs here: the file-size limit plays the full disk
        lines = run_writer(tmp_path / "tiny" / "state.duckdb", 1, 10, FSIZE_LIMIT="4096")
        assert lines[-1].get("error") == "DatabaseUnavailableError", lines
        return
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (8 * 1024 * 1024))
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(small_disk / "new.duckdb", wait=0)
    assert "cannot" in str(info.value) or "not saved" in str(info.value)
    filler.unlink()
    conn = connect(small_disk / "new.duckdb", wait=0)  # with room again it opens and migrates
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    conn.close()


def test_file_size_limit_on_open_is_a_clear_error(tmp_path):
    lines = run_writer(tmp_path / "tiny" / "state.duckdb", 1, 10, FSIZE_LIMIT="4096")
    assert lines[-1].get("error") == "DatabaseUnavailableError", lines


@pytest.fixture
def open_base():
    """A folder every user can traverse (pytest's own tmp folders are root-only)."""
    base = Path(tempfile.mkdtemp(prefix="mcp-state-faults-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _readonly_dir(base: Path) -> Path:
    directory = base / "ro"
    directory.mkdir()
    os.chmod(directory, 0o755)  # owned by root: read-only for nobody
    return directory


def test_read_only_directory_on_open(open_base):
    directory = _readonly_dir(open_base)
    lines = run_writer(directory / "state.duckdb", 1, 10, RUN_AS_UID=str(NOBODY))
    assert lines[-1].get("error") == "DatabaseUnavailableError", lines
    assert "Permission denied" in lines[-1]["message"] and "writable" in lines[-1]["message"]
    assert not (directory / "state.duckdb").exists()


def test_read_only_database_file_on_open_keeps_data(open_base):
    directory = _readonly_dir(open_base)
    db_path = directory / "state.duckdb"
    before = run_writer(db_path, 2, 10)  # as root: earlier data
    assert before[-1] == {"done": True}
    os.chmod(db_path, 0o644)
    snapshot = db_path.read_bytes()
    lines = run_writer(db_path, 1, 10, RUN_AS_UID=str(NOBODY))
    assert lines[-1].get("error") == "DatabaseUnavailableError", lines
    assert db_path.read_bytes() == snapshot, "a refused writer changed the file"
    assert len(_audit_ids(db_path)) == 2


RO_ON_WRITE = textwrap.dedent(
    """
    import json, os, sys
    from mcp_state.db import Database
    from mcp_state.errors import StateError
    from mcp_state.gateway import Gateway
    from mcp_state.repositories.audit import AuditRepository
    os.setgid(65534); os.setuid(65534)
    directory = sys.argv[1]
    db = Database(os.path.join(directory, "state.duckdb"), idle_release=None)
    repo = AuditRepository(db)
    out = {"acked": [repo.log(user_id="u", action="bulk") for _ in range(2)]}
    Gateway(db).fetch_value("CHECKPOINT")          # the next write needs a new write-ahead log file
    os.chmod(directory, 0o555)                       # the directory turns read-only under the open database
    try:
        repo.log(user_id="u", action="bulk")
        out["refused"] = None
    except StateError as exc:
        out["refused"] = [type(exc).__name__, str(exc)]
    os.chmod(directory, 0o755)                       # fixed: writing works again
    out["acked"].append(repo.log(user_id="u", action="bulk"))
    db.close()
    print(json.dumps(out))
    """
)


def test_read_only_directory_on_write_keeps_data(open_base):
    directory = open_base / "owned"
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)
    proc = subprocess.run(
        [sys.executable, "-c", RO_ON_WRITE, str(directory)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["refused"] is not None and out["refused"][0] == "DatabaseUnavailableError", out
    assert "not saved" in out["refused"][1]
    assert sorted(_audit_ids(directory / "state.duckdb")) == sorted(out["acked"])
