"""Damaged files: each case ends in one named line (no traceback) and the way forward works.

A writer process acknowledges audit rows one at a time and dies by SIGKILL, so everything it
wrote lives only in the WAL; then the files are damaged the way the issue measured them.
"""

from __future__ import annotations

import os
import re
import shutil
import struct

import pytest
from recovery_support import audit_ids, cli, crash_writer, one_line_error
from server_support import connect, text_of

from mcp_state import recovery
from mcp_state.backup import verify
from mcp_state.walfile import scan_wal

pytestmark = pytest.mark.slow


@pytest.fixture
def crashed(tmp_path):
    """A database whose 40 acknowledged rows are all in its WAL; the ids in write order."""
    path = tmp_path / "state" / "system.duckdb"
    acked = crash_writer(path, 40)
    assert len(acked) == 40 and recovery.wal_path(path).exists()
    return path, acked


def test_a_database_cut_in_half_is_named_and_a_backup_brings_it_back(tmp_path, crashed):
    path, acked = crashed
    twin = (
        tmp_path / "twin"
    )  # back up a copy: a backup checkpoints, and the damage must hit the WAL-only state
    twin.mkdir()
    for source in (path, recovery.wal_path(path)):
        shutil.copyfile(source, twin / source.name)
    assert cli("backup", "--db", str(twin / path.name), "--to", str(tmp_path / "b.duckdb")).returncode == 0
    os.truncate(path, os.path.getsize(path) // 2)
    for command in (["verify"], ["query", "SELECT 1"], ["export", "--to", str(tmp_path / "x")], ["recover"]):
        line = one_line_error(cli(*command, "--db", str(path)))
        assert str(path) in line and "damaged" in line and "mcp-state restore --from BACKUP" in line
    done = cli("restore", "--from", str(tmp_path / "b.duckdb"), "--db", str(path), "--force")
    assert done.returncode == 0, done.stderr
    assert audit_ids(path) == set(acked)
    assert cli("verify", "--db", str(path)).returncode == 0


def test_garbage_in_the_wal_is_named_and_recover_keeps_the_transactions_before_it(crashed):
    path, acked = crashed
    wal = recovery.wal_path(path)
    wal_before = wal.read_bytes()
    with open(wal, "r+b") as handle:
        handle.seek(os.path.getsize(wal) // 2)
        handle.write(os.urandom(4096))
    line = one_line_error(cli("verify", "--db", str(path)))
    assert f"the WAL {wal} is damaged" in line
    line = one_line_error(cli("query", "SELECT 1", "--db", str(path)))
    assert f"the WAL {wal} is damaged" in line and f"mcp-state recover --db {path}" in line
    done = cli("recover", "--db", str(path))
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stdout and "The WAL as it was is kept in" in done.stdout
    dropped = int(re.search(r"dropped (\d+) committed transactions after the damage", done.stdout).group(1))  # type: ignore[union-attr]
    kept = sorted(p for p in path.parent.iterdir() if ".set-aside-" in p.name)
    assert len(kept) == 1 and kept[0].read_bytes()[:8192] == wal_before[:8192]
    ids = audit_ids(path)
    # What survives is exactly the rows written before the damage, in order.
    assert 0 < len(ids) < len(acked) and ids == set(acked[: len(ids)])
    # Counted from the records that run on after the garbage: some, never more than were lost.
    assert 0 < dropped <= len(acked) - len(ids)
    assert cli("verify", "--db", str(path)).returncode == 0


def test_a_torn_wal_opens_with_a_warning_naming_the_wal_and_the_copy_kept(crashed):
    path, acked = crashed
    wal = recovery.wal_path(path)
    torn_size = os.path.getsize(wal) * 2 // 3
    os.truncate(wal, torn_size)
    done = cli("query", "SELECT count(*) AS n FROM audit_log", "--db", str(path))
    assert done.returncode == 0, done.stderr
    assert f"the WAL {wal} ends in a record cut short" in done.stderr and "A copy is kept in" in done.stderr
    copies = [p for p in path.parent.iterdir() if ".torn-" in p.name]
    assert len(copies) == 1 and copies[0].stat().st_size == torn_size
    ids = audit_ids(path)
    assert 0 < len(ids) < len(acked) and ids == set(acked[: len(ids)])
    # The start that replayed it checkpointed: nothing lives only in the WAL any more.
    assert not wal.exists() or scan_wal(path).commits == []


def test_a_deleted_wal_is_named_and_recover_accepts_the_loss(crashed):
    path, _ = crashed
    recovery.wal_path(path).unlink()
    line = one_line_error(cli("query", "SELECT 1", "--db", str(path)))
    assert f"the WAL {recovery.wal_path(path)} is missing" in line and "mcp-state recover" in line
    done = cli("recover", "--db", str(path))
    assert done.returncode == 0 and "the WAL was missing" in done.stdout
    assert cli("verify", "--db", str(path)).returncode == 0
    assert audit_ids(path) == set()


def test_a_clean_shutdown_leaves_no_marker_that_could_be_mistaken_for_a_deleted_wal(tmp_path):
    path = tmp_path / "s.duckdb"
    acked = crash_writer(path, 3, close=True)
    assert not recovery.wal_path(path).exists() and not recovery.marker_path(path).exists()
    assert audit_ids(path) == set(acked)


def _with_header_version(source, target, version: int) -> None:
    """A copy of ``source`` whose main header claims another storage version (checksum fixed)."""
    data = bytearray(source.read_bytes())
    struct.pack_into("<Q", data, 12, version)
    checksum = 5381
    for (word,) in struct.iter_unpack("<Q", bytes(data[8:4096])):
        checksum ^= (word * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    struct.pack_into("<Q", data, 0, checksum)
    target.write_bytes(bytes(data))


def test_a_file_from_another_duckdb_version_is_named(tmp_path):
    path = tmp_path / "s.duckdb"
    acked = crash_writer(path, 2, close=True)
    foreign = tmp_path / "foreign.duckdb"
    _with_header_version(path, foreign, 2000)
    for command in (["verify"], ["query", "SELECT 1"], ["backup", "--to", str(tmp_path / "b.duckdb")]):
        line = one_line_error(cli(*command, "--db", str(foreign)))
        assert f"the database {foreign} was written by another DuckDB version" in line
    assert audit_ids(path) == set(acked)  # the original is untouched


def test_verify_reads_every_block_and_names_damage_where_the_data_is(tmp_path):
    path = tmp_path / "s.duckdb"
    crash_writer(path, 300, close=True)
    good = verify(str(path))
    assert good.problems == [] and good.rows["audit_log"] == 300
    caught = 0
    for block in range(4):
        copy = tmp_path / f"b{block}.duckdb"
        shutil.copyfile(path, copy)
        with open(copy, "r+b") as handle:
            handle.seek(12288 + block * 262144 + 1000)
            handle.write(b"\xab" * 4000)
        report = verify(str(copy))
        if report.problems:
            caught += 1
            assert "damaged" in report.problems[0] and str(copy) in report.problems[0]
        else:  # the garbage landed in free space: the data must read back unchanged
            assert report.rows == good.rows
    assert caught >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_agent_calling_a_tool_on_a_damaged_wal_gets_the_named_error(crashed, anyio_backend):
    path, _ = crashed
    recovery.wal_path(path).unlink()
    async with connect(path) as client:
        result = await client.call_tool("query_audit_log", {"limit": 1})
    assert result.is_error
    text = text_of(result)
    assert f"the WAL {recovery.wal_path(path)} is missing" in text and "[damaged]" in text
