"""Audit retention: move old audit rows to Parquet files that DuckDB can still query.

``archive_audit(db, before, folder)`` writes every audit row older than ``before`` to one
Parquet file ``audit-<first seq>-<last seq>.parquet`` in ``folder`` and deletes those rows, in
one transaction: the file is complete and in place before the deletion commits, so a crash
leaves the rows either live or in the file (at worst in both, never in neither).

The archive folder (``archive_folder``): ``$MCP_STATE_AUDIT_ARCHIVE``, else ``archive/audit``
beside the database file. ``mcp-state audit archive`` writes there unless ``--to`` says
otherwise, and the SQL tool reads it: ``ArchiveReader`` lists its ``audit-*.parquet`` files
and reads them, in the server, on a private in-memory DuckDB instance that may read that
folder only (DuckDB's ``allowed_directories``); the SQL worker gets the rows as the table
``audit_archive`` (``mcp_state.sql.snapshot``) and never reads a file itself.

Reading the archive elsewhere: ``read_parquet('FOLDER/audit-*.parquet')`` has the columns of
``audit_log``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from mcp_state import recovery
from mcp_state.db import WRITE_LOCK, Database
from mcp_state.errors import DatabaseUnavailableError, InvalidArgumentError
from mcp_state.gateway import quote_identifier

ARCHIVE_ENV = "MCP_STATE_AUDIT_ARCHIVE"
ARCHIVE_PATTERN = "audit-*.parquet"
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


def archive_folder(db_path: str | os.PathLike[str] | None) -> Path | None:
    """The audit archive folder of the database at ``db_path``: ``$MCP_STATE_AUDIT_ARCHIVE``, else
    ``archive/audit`` beside the database file (None for an in-memory database without it)."""
    configured = os.environ.get(ARCHIVE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if db_path is None or str(db_path) in ("", ":memory:"):
        return None
    return Path(db_path).resolve().parent / "archive" / "audit"


class ArchiveReader:
    """The Parquet files of one archive folder, read for the SQL tool (in the server process)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @classmethod
    def of(cls, db_path: str | os.PathLike[str] | None) -> ArchiveReader:
        return cls(archive_folder(db_path))

    def files(self) -> list[tuple[str, int, int]]:
        """``(name, size, mtime_ns)`` of each archive file, by name; none for a missing folder."""
        if self.folder is None:
            return []
        found = []
        try:
            for path in self.folder.glob(ARCHIVE_PATTERN):
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):  # files only: a link could lead anywhere
                    found.append((path.name, info.st_size, info.st_mtime_ns))
        except OSError:
            return []
        return sorted(found)

    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed or rewritten."""
        return json.dumps(self.files())

    @contextmanager
    def reading(self, columns: list[list[str]]) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A cursor and a subquery over the archive with ``columns`` (``[[name, type], ...]``, those
        of the redacted audit view): no rows when there are no files."""
        from mcp_state.sql.hardening import NO_EXTENSIONS_OR_SECRETS

        conn = duckdb.connect(":memory:", config={**NO_EXTENSIONS_OR_SECRETS, "temp_directory": ""})
        try:
            files = [self.folder / name for name, _, _ in self.files()] if self.folder else []
            if files:
                allow_archive(conn, self.folder)  # type: ignore[arg-type]
                picks = ", ".join(
                    f"CAST({quote_identifier(c)} AS {t}) AS {quote_identifier(c)}" for c, t in columns
                )
                source = f"(SELECT {picks} FROM read_parquet([{', '.join(map(_literal, files))}]))"
            else:
                source = (
                    f"(SELECT {', '.join(f'NULL::{t} AS {quote_identifier(c)}' for c, t in columns)} LIMIT 0)"
                )
            conn.execute("SET enable_external_access = false")
            conn.execute("SET lock_configuration = true")
            yield conn, source
        except duckdb.Error as exc:
            message = " ".join(str(exc).split())[:300]
            raise DatabaseUnavailableError(
                f"the audit archive in {self.folder} could not be read ({message}); move the damaged "
                f"audit-*.parquet file out of that folder, or point {ARCHIVE_ENV} to another folder"
            ) from None
        finally:
            conn.close()


def allow_archive(conn: duckdb.DuckDBPyConnection, folder: str | os.PathLike[str]) -> None:
    """Let ``conn`` read exactly ``folder``'s files once external access is switched off.

    Must run while external access is still on (DuckDB refuses to change the allowed
    directories after), that is before ``SET GLOBAL enable_external_access = false``.
    """
    allowed = str(Path(folder).resolve()) + os.sep
    conn.execute(f"SET GLOBAL allowed_directories = [{_literal(Path(allowed))}]")
