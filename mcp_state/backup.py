"""Backup, restore, verify and recover a database file (the library behind those commands).

A backup is a byte copy of the database file taken while this process holds DuckDB's lock
on it, right after a checkpoint: nothing lives only in the WAL and nobody else can write, so
the copy is consistent. A running server lets go of the file when idle (the wait is
``MCP_STATE_LOCK_TIMEOUT``). Every file written here goes to a temporary name in the target
folder, is synced, renamed into place, and the folder is synced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mcp_state import consistency, recovery
from mcp_state.db import WRITE_LOCK, check_schema_version, connect, get_schema_version
from mcp_state.errors import (
    DatabaseDamagedError,
    DatabaseLockedError,
    DatabaseUnavailableError,
    InvalidArgumentError,
    StateError,
)
from mcp_state.gateway import quote_identifier
from mcp_state.schema import LATEST_VERSION
from mcp_state.walfile import commits_after_damage, scan_wal


def _copy_synced(source: str | os.PathLike[str] | int, target: Path) -> None:
    """Copy ``source`` (a path, or a descriptor read with pread and left open) to ``target``
    atomically and durably: temp file, fsync, rename, fsync of the folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as dst:
            if isinstance(source, int):
                offset = 0
                while chunk := os.pread(source, 1 << 20, offset):
                    dst.write(chunk)
                    offset += len(chunk)
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    recovery.fsync_dir(target.parent)


@recovery.file_errors
def backup(db_path: str, to: str | os.PathLike[str], *, force: bool = False) -> dict[str, Any]:
    """Checkpoint ``db_path`` and copy it to ``to``; returns the copy's path, size and row counts."""
    target = Path(to)
    if target.is_dir() or str(to).endswith(("/", os.sep)):
        target = target / f"{Path(db_path).stem}-{recovery.stamp()}.duckdb"
    if target.exists() and not force:
        raise InvalidArgumentError(f"{target} exists; choose another path or pass --force to replace it")
    if not Path(db_path).exists():
        raise DatabaseUnavailableError(f"there is no database at {db_path}; check --db or DATA_DIR")
    conn = connect(db_path, migrate=False)
    try:
        with WRITE_LOCK:  # no writer of this process runs between the checkpoint and the copy
            conn.execute("CHECKPOINT")
            # Through DuckDB's own descriptor: opening and closing one of ours would drop its lock.
            fd = recovery.held_fd(db_path)
            if fd is None:
                raise DatabaseUnavailableError(f"cannot read {db_path} through the open database")
            _copy_synced(fd, target)
    finally:
        conn.close()
    report = verify(str(target))
    if report.problems:
        raise DatabaseUnavailableError(f"the backup {target} does not verify: {report.problems[0]}")
    return {"path": str(target), "bytes": target.stat().st_size, "rows": sum(report.rows.values())}


@recovery.file_errors
def restore(source: str, db_path: str, *, force: bool = False) -> dict[str, Any]:
    """Put the backup ``source`` in place of ``db_path``; the file replaced is kept aside."""
    if not Path(source).is_file():
        raise InvalidArgumentError(f"there is no backup file at {source}")
    report = verify(source)
    if report.problems:
        raise DatabaseUnavailableError(f"the backup {source} does not verify: {report.problems[0]}")
    target = Path(db_path)
    holder = recovery.holder(target) if target.exists() else None
    if holder is not None:
        raise DatabaseLockedError(
            f"the database {target} is held by a running process (PID {holder}); stop it, then restore"
        )
    wal = recovery.wal_path(target)
    if (target.exists() or wal.exists()) and not force:
        raise InvalidArgumentError(
            f"{target} exists; pass --force to replace it (the current file is kept aside)"
        )
    kept = []
    suffix = f".before-restore-{recovery.stamp()}"
    # The tokens file lists the replaced database's tokens: the HTTP server writes it anew.
    for path in (target, wal, Path(f"{target}.tokens")):
        if path.exists():
            aside = Path(f"{path}{suffix}")
            os.replace(path, aside)
            kept.append(str(aside))
    recovery.forget_marker(target)
    _copy_synced(source, target)
    return {"path": str(target), "rows": sum(report.rows.values()), "kept": kept}


@dataclass
class Report:
    """What ``verify`` found: row counts per table and the problems (empty when all is well)."""

    path: str
    schema_version: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify(db_path: str) -> Report:
    """Open ``db_path`` read-only and read every table and index; nothing is changed."""
    report = Report(db_path)
    if not Path(db_path).is_file():
        report.problems.append(f"there is no database file at {db_path}")
        return report
    scan = scan_wal(db_path)
    if scan.state == "corrupt":
        report.problems.append(f"the WAL {recovery.wal_path(db_path)} is damaged after byte {scan.good}")
        return report
    if scan.state == "torn":
        report.notes.append(f"the WAL ends in a record cut short ({scan.size - scan.good} bytes)")
    try:
        conn = connect(db_path, config={"access_mode": "READ_ONLY"}, migrate=False)
    except StateError as exc:
        report.problems.append(str(exc))
        return report
    try:
        _check(conn, report)
    except duckdb.Error as exc:
        report.problems.append(
            f"the database {db_path} is damaged ({str(exc).strip().splitlines()[0]}); restore the latest "
            f"backup (`mcp-state restore --from BACKUP --db {db_path} --force`)"
        )
    finally:
        conn.close()
    return report


def verify_server(url: str) -> Report:
    """A PostgreSQL database, read-only: its schema version (refused when newer than this code),
    every table read (its rows counted), and the agreement checks (``consistency``, in one snapshot:
    a read-only REPEATABLE READ transaction)."""
    from mcp_state.db import Database
    from mcp_state.sharing import shown_location
    from mcp_state.transfer import count_rows

    report = Report(shown_location(url))
    try:
        with Database(url, idle_release=None, read_only=True) as db:
            report.rows = count_rows(db)
            with db.hold() as conn:
                report.schema_version = get_schema_version(conn)
                conn.execute(db.dialect.begin_snapshot)
                try:
                    found = consistency.check(conn, url)
                finally:
                    conn.execute("ROLLBACK")
    except StateError as exc:
        report.problems.append(str(exc))
        return report
    report.problems.extend(found.problems)
    report.notes.extend(found.notes)
    return report


def _check(conn: duckdb.DuckDBPyConnection, report: Report) -> None:
    report.schema_version = check_schema_version(conn)
    if report.schema_version < LATEST_VERSION:
        report.notes.append(
            f"schema version {report.schema_version}; mcp-state migrates it to {LATEST_VERSION} on open"
        )
    tables = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name"
    ).fetchall()
    for (table,) in tables:
        quoted = quote_identifier(table)
        # Reading one aggregate per column reads every block of every column.
        conn.execute(f"SELECT count(*), min(hash(COLUMNS(*))) FROM {quoted}").fetchall()
        report.rows[table] = int(conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])  # type: ignore[index]
    for table, expressions in conn.execute(
        "SELECT table_name, expressions FROM duckdb_indexes() WHERE database_name = current_database()"
    ).fetchall():
        quoted = quote_identifier(table)
        column = expressions.strip("[]").split(",")[0].strip().strip("'")  # from the catalog, not data
        # An equality lookup on the indexed column goes through the index.
        conn.execute(
            f"SELECT count(*) FROM {quoted} WHERE {column} = (SELECT {column} FROM {quoted} LIMIT 1)"
        )
    found = consistency.check(conn, report.path)
    report.problems.extend(found.problems)
    report.notes.extend(found.notes)
    if get_schema_version(conn) == 0:
        report.problems.append("no mcp-state schema in this file")


@recovery.file_errors
def recover(db_path: str, *, on_try: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Open ``db_path`` without the damaged part of its WAL, keeping a copy of the WAL aside.

    Replays the longest prefix of whole transactions that DuckDB accepts, checkpoints, and
    reports how many transactions were kept and how many were dropped.
    """
    target = Path(db_path)
    if not target.is_file():
        raise DatabaseUnavailableError(f"there is no database at {db_path}; check --db or DATA_DIR")
    holder = recovery.holder(target)
    if holder is not None:
        raise DatabaseLockedError(
            f"the database {target} is held by a running process (PID {holder}); stop it first"
        )
    wal = recovery.wal_path(target)
    scan = scan_wal(target)
    result: dict[str, Any] = {"path": str(target), "kept": 0, "dropped": 0, "set_aside": None}
    if scan.state in ("absent", "empty"):
        if recovery.wal_missing(target):
            result["note"] = "the WAL was missing: the changes since the last checkpoint cannot be counted"
        recovery.forget_marker(target)
        _checkpointed(target)
        return result
    aside = Path(f"{wal}.set-aside-{recovery.stamp()}")
    shutil.copyfile(wal, aside)
    result["set_aside"] = str(aside)
    data = wal.read_bytes()
    boundaries = scan.commits
    keep = _longest_replayable(target, data, boundaries, on_try)
    result["kept"] = keep
    result["dropped"] = len(boundaries) - keep
    if scan.state == "corrupt":  # plus those after the unreadable bytes (at least; one may be in them)
        result["dropped"] += commits_after_damage(target, scan.good)
    result["unreadable_bytes"] = scan.size - (boundaries[keep - 1] if keep else 0)
    with open(wal, "r+b") as handle:
        handle.truncate(boundaries[keep - 1] if keep else 0)
        os.fsync(handle.fileno())
    if keep == 0:
        wal.unlink()
    recovery.forget_marker(target)
    _checkpointed(target)
    return result


def _checkpointed(target: Path) -> None:
    conn = connect(target)
    try:
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def _longest_replayable(
    target: Path, data: bytes, boundaries: list[int], on_try: Callable[[int], None] | None
) -> int:
    """How many whole transactions of the WAL DuckDB replays without error (binary search)."""

    def opens(count: int) -> bool:
        if on_try:
            on_try(count)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".recover-") as scratch:
            copy = Path(scratch) / "try.duckdb"
            shutil.copyfile(target, copy)
            if count:
                Path(f"{copy}.wal").write_bytes(data[: boundaries[count - 1]])
            try:
                duckdb.connect(str(copy)).close()
            except duckdb.Error:
                return False
            return True

    low, high = 0, len(boundaries)
    if opens(high):
        return high
    if not opens(0):
        raise DatabaseDamagedError(
            f"the database {target} itself is damaged, not only its WAL: restore the latest backup "
            f"(`mcp-state restore --from BACKUP --db {target} --force`)"
        )
    while high - low > 1:  # opens(low) holds, opens(high) does not
        middle = (low + high) // 2
        if opens(middle):
            low = middle
        else:
            high = middle
    return low
