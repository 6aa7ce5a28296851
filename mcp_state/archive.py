"""Audit retention: move old audit rows to Parquet files that DuckDB can still query.

``archive_audit(db, before, folder)`` writes every audit row older than ``before`` to one
Parquet file ``audit-<first seq>-<last seq>.parquet`` in ``folder`` and deletes those rows, in
one transaction: the file is complete and in place before the deletion commits, so a crash
leaves the rows either live or in the file (at worst in both, never in neither).

Reading the archive: ``read_parquet('FOLDER/audit-*.parquet')`` has the columns of
``audit_log``. The read-only SQL tool refuses file access; ``allow_archive(conn, folder)``
opens exactly that folder to a connection before the SQL hardening switches external access
off (DuckDB's ``allowed_directories``), and ``archive_view_sql(folder)`` is the view that
exposes it as ``audit_archive``.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from mcp_state import recovery
from mcp_state.db import WRITE_LOCK, Database
from mcp_state.errors import InvalidArgumentError

_DURATION = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def cutoff(before: str, now: datetime | None = None) -> datetime:
    """``90d`` / ``12h`` / ``2w`` ago, or an ISO date or timestamp (UTC), as a naive UTC datetime."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(before)
    if match:
        moment = now - int(match.group(1)) * _UNITS[match.group(2)]
    else:
        try:
            moment = datetime.fromisoformat(before.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"--before must be an age such as 90d, 12h or 2w, or a date such as 2026-01-01; got {before!r}"
            ) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@recovery.file_errors
def archive_audit(db: Database, before: datetime, folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Move the audit rows with ``timestamp < before`` to a Parquet file in ``folder``."""
    target_dir = Path(folder).resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    with WRITE_LOCK, db.session() as cur:
        cur.execute("BEGIN TRANSACTION")
        try:
            row = cur.execute(
                "SELECT count(*), min(seq), max(seq) FROM audit_log WHERE timestamp < ?", [before]
            ).fetchone()
            count, first, last = row if row else (0, None, None)
            if not count:
                cur.execute("ROLLBACK")
                return {"rows": 0, "file": None, "before": before.isoformat(sep=" ")}
            final = target_dir / f"audit-{first:012d}-{last:012d}.parquet"
            if final.exists():
                raise InvalidArgumentError(f"{final} exists already; archive to another folder")
            temp = target_dir / f".{final.name}.partial"
            cur.execute(
                f"COPY (SELECT * FROM audit_log WHERE timestamp < ? ORDER BY seq) TO {_literal(temp)} "
                "(FORMAT parquet)",
                [before],
            )
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            deleted = cur.execute("DELETE FROM audit_log WHERE timestamp < ?", [before]).fetchone()
            if not deleted or deleted[0] != count:
                raise InvalidArgumentError("the audit log changed while archiving; nothing was moved, retry")
            os.replace(temp, final)
            recovery.fsync_dir(target_dir)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            for leftover in target_dir.glob(".audit-*.partial"):
                leftover.unlink(missing_ok=True)
            if "final" in locals() and final.exists() and "deleted" in locals():
                final.unlink(missing_ok=True)
            raise
    remaining = db_count(db)
    return {
        "rows": int(count),
        "file": str(final),
        "remaining": remaining,
        "before": before.isoformat(sep=" "),
    }


def db_count(db: Database) -> int:
    with db.session() as cur:
        row = cur.execute("SELECT count(*) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def archive_glob(folder: str | os.PathLike[str]) -> str:
    return str(Path(folder).resolve() / "audit-*.parquet")


def archive_view_sql(folder: str | os.PathLike[str]) -> str:
    """The statement that exposes the archive in ``folder`` as the view ``audit_archive``."""
    return f"CREATE OR REPLACE TEMP VIEW audit_archive AS SELECT * FROM read_parquet({_literal(Path(archive_glob(folder)))})"


def allow_archive(conn: duckdb.DuckDBPyConnection, folder: str | os.PathLike[str]) -> None:
    """Let ``conn`` read exactly ``folder``'s files once external access is switched off.

    Must run while external access is still on (DuckDB refuses to change the allowed
    directories after), that is before ``SET GLOBAL enable_external_access = false``.
    """
    allowed = str(Path(folder).resolve()) + os.sep
    conn.execute(f"SET GLOBAL allowed_directories = [{_literal(Path(allowed))}]")
