"""Backup while another process writes, restore, the refusals, and the audit archive round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from recovery_support import cli, crash_writer, one_line_error

import mcp_state
from mcp_state.archive import ArchiveReader
from mcp_state.db import Database, connect
from mcp_state.repositories.audit import AuditRepository

pytestmark = pytest.mark.slow  # every test here runs mcp-state commands as processes

# Writes bursts of audit rows with pauses in between (when it lets go of the file), then exits.
BURSTS = textwrap.dedent(
    """
    import sys, time
    from mcp_state.db import Database
    from mcp_state.repositories.audit import AuditRepository
    db = Database(sys.argv[1], idle_release=0.1)
    audit = AuditRepository(db)
    for burst in range(int(sys.argv[2])):
        for i in range(20):
            audit.log(user_id="u", action="load", params={"burst": burst, "i": i})
        print(burst, flush=True)
        time.sleep(0.4)
    db.close()
    """
)

# Holds the file open (as a running server does) until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from mcp_state.db import Database
    from mcp_state.repositories.audit import AuditRepository
    db = Database(sys.argv[1], idle_release=None)
    print(AuditRepository(db).log(user_id="u", action="held"), flush=True)
    sys.stdin.read()
    db.close()
    """
)


def contents(path) -> dict[str, list[tuple]]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}
    finally:
        conn.close()


def test_a_backup_taken_during_writes_is_consistent_and_restores_identically(tmp_path):
    path = tmp_path / "state" / "system.duckdb"
    crash_writer(path, 1, close=True)  # the file exists, with its schema
    with subprocess.Popen(
        [sys.executable, "-c", BURSTS, str(path), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as load:
        try:
            assert load.stdout is not None
            load.stdout.readline()  # the first burst is written
            backup = tmp_path / "backups" / "during.duckdb"
            done = cli("backup", "--db", str(path), "--to", str(backup), env={"MCP_STATE_LOCK_TIMEOUT": "30"})
            assert done.returncode == 0, done.stderr
            _, errors = load.communicate(timeout=60)
            assert load.returncode == 0, errors
        finally:
            load.kill()
    during, final = contents(backup), contents(path)
    rows = during["audit_log"]
    # Consistent: the state at one commit (each audit row is one transaction; the writer lets go
    # between two of them when the backup asks), so exactly the first rows in commit order. On a
    # loaded machine the backup may come after the last burst.
    loads = [json.loads(row[5]) for row in rows if row[3] == "load"]
    assert 20 <= len(loads) <= 160
    cut = max(row[8] for row in rows)
    assert rows == [row for row in final["audit_log"] if row[8] <= cut]
    restored = tmp_path / "restored" / "system.duckdb"
    done = cli("restore", "--from", str(backup), "--db", str(restored))
    assert done.returncode == 0, done.stderr
    assert contents(restored) == during
    assert cli("verify", "--db", str(restored)).returncode == 0


def test_restore_refuses_to_overwrite_without_force_and_keeps_the_old_file_aside(tmp_path):
    path = tmp_path / "s.duckdb"
    first = crash_writer(path, 2, close=True)
    backup = tmp_path / "b.duckdb"
    assert cli("backup", "--db", str(path), "--to", str(backup)).returncode == 0
    later = crash_writer(path, 2, close=True)
    line = one_line_error(cli("restore", "--from", str(backup), "--db", str(path)))
    assert f"{path} exists; pass --force" in line
    done = cli("restore", "--from", str(backup), "--db", str(path), "--force")
    assert done.returncode == 0, done.stderr
    assert {row[0] for row in contents(path)["audit_log"]} == set(first)
    aside = [p for p in tmp_path.iterdir() if ".before-restore-" in p.name]
    assert len(aside) == 1 and {row[0] for row in contents(aside[0])["audit_log"]} == set(first + later)


def test_a_file_a_running_process_holds_is_never_restored_and_a_migration_waits_its_turn(tmp_path):
    path = tmp_path / "s.duckdb"
    crash_writer(path, 1, close=True)
    backup = tmp_path / "b.duckdb"
    assert cli("backup", "--db", str(path), "--to", str(backup)).returncode == 0
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        _refused_while_held(holder, path, tmp_path)
    assert holder.returncode == 0


def _refused_while_held(holder: subprocess.Popen, path, tmp_path) -> None:
    backup = tmp_path / "b.duckdb"
    try:
        assert holder.stdout is not None
        acked = holder.stdout.readline().strip()
        line = one_line_error(cli("restore", "--from", str(backup), "--db", str(path), "--force"))
        assert f"held by a running process (PID {holder.pid})" in line
        legacy = Path(mcp_state.__file__).parent / "sample_data"  # a real legacy folder
        done = cli(
            "migrate", "--data-dir", str(legacy), "--db", str(path), env={"MCP_STATE_LOCK_TIMEOUT": "0.5"}
        )
        # A holder that takes part in sharing lets go when asked: the migration runs after it, and
        # the write it acknowledged is still there (checked below).
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert f"in use by another process (PID {holder.pid})" in done.stderr
    finally:
        holder.communicate("", timeout=30)
    assert acked in {row[0] for row in contents(path)["audit_log"]}


def test_audit_archive_moves_old_rows_to_parquet_that_stays_queryable_read_only(tmp_path):
    path = tmp_path / "s.duckdb"
    now = datetime.now(UTC).replace(tzinfo=None)
    with Database(path, idle_release=None) as db:
        audit = AuditRepository(db)
        for i in range(5):
            audit.log(user_id="u", action="old", params={"i": i}, timestamp=now - timedelta(days=100 + i))
        for i in range(3):
            audit.log(user_id="u", action="new", params={"i": i})
    before = contents(path)["audit_log"]
    folder = tmp_path / "archive"
    done = cli("audit", "archive", "--before", "90d", "--to", str(folder), "--db", str(path))
    assert done.returncode == 0, done.stderr
    assert "Archived 5 audit rows" in done.stdout and "3 rows stay in the live table" in done.stdout
    live = contents(path)["audit_log"]
    assert {row[3] for row in live} == {"new"}
    # Read as the SQL tool reads it: an engine that may read exactly the archive folder.
    with duckdb.connect(str(path), read_only=True) as db:
        columns = [[name, kind] for name, kind, *_ in db.execute("DESCRIBE audit_log").fetchall()]
    with ArchiveReader(folder).reading(columns) as (conn, source):
        archived = conn.execute(f"SELECT * FROM {source} ORDER BY ALL").fetchall()
        with pytest.raises(duckdb.PermissionException):
            conn.execute(f"SELECT * FROM read_text('{path}')")
    assert sorted(archived + live) == sorted(before)
    again = cli("audit", "archive", "--before", "90d", "--to", str(folder), "--db", str(path))
    assert again.returncode == 0 and "nothing archived" in again.stdout
    line = one_line_error(cli("audit", "archive", "--before", "soon", "--to", str(folder), "--db", str(path)))
    assert "--before must be an age such as 90d" in line


def test_every_new_command_has_help():
    for command in (["backup"], ["restore"], ["verify"], ["recover"], ["audit", "archive"]):
        done = cli(*command, "--help")
        assert done.returncode == 0 and "example: mcp-state" in done.stdout, command


def test_verify_names_a_missing_file_and_a_newer_schema(tmp_path):
    line = one_line_error(cli("verify", "--db", str(tmp_path / "none.duckdb")))
    assert "there is no database file at" in line
    path = tmp_path / "s.duckdb"
    conn = connect(path)
    conn.execute("INSERT INTO schema_version VALUES (999, current_timestamp)")
    conn.close()
    line = one_line_error(cli("verify", "--db", str(path)))
    assert "schema version 999" in line and "Upgrade mcp-state" in line
    assert os.path.exists(path)
