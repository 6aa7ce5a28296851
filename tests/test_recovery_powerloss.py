"""Power loss and I/O faults, with an LD_PRELOAD shim around fsync/fdatasync and reads/writes.

Power loss: the shim keeps, for each file in the folder, its content as of its last fsync, and
the folder's names as of its last fsync; after SIGKILL the folder is rebuilt from that alone
(what a power cut leaves when the page cache is lost). Faults: EIO or ENOSPC on the database
file during a checkpoint, or on the WAL while it is replayed.
"""

from __future__ import annotations

import pytest
from recovery_support import after_power_loss, audit_ids, cli, compile_shim, crash_writer, one_line_error

from mcp_state import recovery

pytestmark = pytest.mark.slow

ERRNOS = {"ENOSPC": "28", "EIO": "5"}


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return compile_shim(tmp_path_factory.mktemp("shim"))


def test_every_acknowledged_write_survives_losing_what_was_not_synced(tmp_path, shim):
    folder, shadow = (tmp_path / "db").resolve(), (tmp_path / "shadow").resolve()
    folder.mkdir()
    shadow.mkdir()
    env = {"LD_PRELOAD": str(shim), "SHIM_DIR": str(folder), "SHIM_SHADOW": str(shadow)}
    # A new database, writes, an idle pause (a checkpoint; the WAL goes and comes back), writes, SIGKILL.
    acked = crash_writer(folder / "s.duckdb", 30, pause_at=15, env=env)
    assert len(acked) == 30
    synced_names = (shadow / ".names").read_text().split()
    assert {"s.duckdb", "s.duckdb.wal"} <= set(synced_names)  # the folder was synced after each creation
    after = after_power_loss(folder, shadow, tmp_path / "after")
    assert audit_ids(after / "s.duckdb") == set(acked)


@pytest.mark.parametrize("errno", sorted(ERRNOS))
def test_a_checkpoint_that_fails_loses_nothing_and_says_so(tmp_path, shim, errno):
    path = tmp_path / "s.duckdb"
    first = crash_writer(path, 1, close=True)
    trigger = tmp_path / "fault-on"
    trigger.touch()
    env = {
        "LD_PRELOAD": str(shim),
        "SHIM_FAULT_SUFFIX": ".duckdb",  # the database file: only checkpoints write it
        "SHIM_FAULT_OPS": "write,sync",
        "SHIM_FAULT_ERRNO": ERRNOS[errno],
        "SHIM_FAULT_TRIGGER": str(trigger),
    }
    errors: list[str] = []
    acked = crash_writer(path, 20, pause_at=10, env=env, errors=errors)
    assert len(acked) >= 10
    assert any(f"checkpoint of {path} failed, the changes stay in its WAL" in line for line in errors)
    # Writes after DuckDB gave up on the instance fail with a named line, never a traceback.
    assert all(
        line.startswith("mcp-state: warning:") or "nothing was lost" in line or "not saved" in line
        for line in errors
    )
    trigger.unlink()
    assert audit_ids(path) == set(first + acked)
    assert not recovery.wal_path(path).exists()  # the start that replayed it checkpointed


@pytest.mark.parametrize("errno", sorted(ERRNOS))
def test_a_fault_while_the_wal_is_replayed_is_named_and_loses_nothing(tmp_path, shim, errno):
    path = tmp_path / "s.duckdb"
    acked = crash_writer(path, 20)
    trigger = tmp_path / "fault-on"
    trigger.touch()
    base = {"LD_PRELOAD": str(shim), "SHIM_FAULT_ERRNO": ERRNOS[errno], "SHIM_FAULT_TRIGGER": str(trigger)}
    reading = {**base, "SHIM_FAULT_SUFFIX": ".wal", "SHIM_FAULT_OPS": "pread,rawread"}
    line = one_line_error(cli("query", "SELECT count(*) FROM audit_log", "--db", str(path), env=reading))
    assert f"cannot read the WAL {recovery.wal_path(path)}" in line and "nothing was changed" in line
    checkpointing = {**base, "SHIM_FAULT_SUFFIX": ".duckdb", "SHIM_FAULT_OPS": "write,sync"}
    done = cli("query", "SELECT count(*) FROM audit_log", "--db", str(path), env=checkpointing)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"the database {path} replayed its WAL but could not checkpoint it" in done.stderr
    trigger.unlink()
    assert audit_ids(path) == set(acked)
