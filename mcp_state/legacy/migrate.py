"""Migrate the legacy JSON state (``LAYOUT.md``) into the database, all or nothing.

``migrate_all(data_dir)`` reads every file of the layout under ``data_dir`` and writes it to
the state database (by default ``data_dir/state/system.duckdb``, the seed's ``DATA_DIR``
convention), returning how many entries of each kind are in the database afterwards.
``migrate()`` does the same and returns the full report the CLI prints.

How it works, and why it is fast at real sizes:

- DuckDB reads each file itself (``read_json_objects``; the audit log line by line, streamed
  into a staging table that spills to disk rather than growing memory) and stages one row
  per entry. Python never touches an entry.
- Every entry is checked in SQL over the staged rows, by the rules of the layout
  (``mcp_state.legacy.layout``), which mirror the repositories' checks value for value.
- The staged rows are written with one ``UPDATE ... FROM`` (rows whose values differ) and
  one ``INSERT ... SELECT`` (new keys) per table, in one transaction for the whole run.

What it guarantees:

- File values are kept: timestamps with an offset, naive (UTC) or a bare date (midnight
  UTC) are stored as UTC; a timestamp missing from a file stays NULL (never "now").
- Idempotent: entries are matched by key (JSON values compared by value, keys in any order:
  a state that went through PostgreSQL's JSONB has its own order); a sync-history or audit entry without an id gets
  one made from its content (``h-``/``a-`` + MD5 of its values, ``-2``, ``-3``... for exact
  repeats), so a second run finds every row unchanged and writes nothing.
- Up to date: a run over changed files inserts new entries and updates entries whose values
  changed, leaving ``seq`` (insertion order) as it was. The audit log is append-only: a
  stored entry is never rewritten, and a file entry that differs from it is a problem. Rows in the database that are not in
  the files are kept and counted ("in the database only"): after the first run the
  database is the live store, and the MCP server may have added rows the files never had.
  To mirror the files exactly, migrate into a new database (``--db``).
- Columns the layout has no place for (``knowledge_votes.voted_at``, ``users.updated_at``)
  are NULL on insert and never changed by a later run.
- All or nothing: a malformed file or entry stops the run with a ``MigrationError`` naming
  the file, the entry and the problem; the transaction is rolled back (and a database file
  this run created is removed). ``skip_invalid`` leaves bad entries out and reports each.
- ``dry_run`` does all of it against a read-only connection (or an in-memory database when
  there is none yet) and writes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from mcp_state.db import _remove_partial, connect, get_schema_version, lock_timeout, system_db_path
from mcp_state.dialect import is_postgres_url
from mcp_state.errors import DatabaseLockedError, MigrationError
from mcp_state.legacy.checks import register_json_by_value
from mcp_state.legacy.layout import KINDS, LAYOUT_FILES
from mcp_state.legacy.report import KindReport, MigrationReport, Progress
from mcp_state.legacy.stage import Run
from mcp_state.legacy.write import write_all
from mcp_state.sharing import configured_url

# DuckDB's memory during a run; staged entries beyond it spill to a temporary file.
MEMORY_LIMIT = "1GB"


# -- running it ----------------------------------------------------------------------------
def migrate_all(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    db_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Migrate ``data_dir`` (default ``$DATA_DIR``); entries of each kind in the database afterwards."""
    return migrate(
        data_dir,
        db_path=db_path,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        progress=progress,
        on_wait=on_wait,
    ).counts()


def migrate(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    db_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Migrate ``data_dir`` into ``db_path`` (default ``data_dir/state/system.duckdb``); the full report.

    ``progress(step, fraction)`` is called as each step runs; ``on_wait(message)`` once if
    another process holds the database and the run waits for it (``MCP_STATE_LOCK_TIMEOUT``).
    """
    source = Path(data_dir if data_dir is not None else os.environ.get("DATA_DIR", "./data"))
    if not source.is_dir():
        raise MigrationError(
            f"the data directory {source} does not exist or is not a directory; pass the folder that holds "
            "src_data/, notifications/, corporate-memory/, auth/ and audit/"
        )
    if not any((source / name).is_file() for name in LAYOUT_FILES):
        raise MigrationError(
            f"{source} holds none of the legacy files ({', '.join(LAYOUT_FILES[:2])}, ...); nothing was "
            "written. Pass the folder that holds src_data/, notifications/, corporate-memory/, auth/ and audit/"
        )
    if db_path is None:
        db_path = configured_url()
    if is_postgres_url(db_path):
        return _migrate_to_server(source, str(db_path), dry_run, skip_invalid, progress)
    target = Path(db_path) if db_path is not None else system_db_path(source)
    report = MigrationReport(source, target, dry_run, [KindReport(k.name, k.file, k.table) for k in KINDS])
    with _open(target, dry_run, on_wait) as conn, _memory_bounded(conn):
        register_json_by_value(conn)
        run = Run(conn, source, report, skip_invalid, progress)
        # Staging only fills temporary tables (and a file that cannot be parsed must not abort
        # the transaction), so it runs before it; the writes run in one transaction.
        run.stage_all()
        conn.execute("BEGIN TRANSACTION")
        try:
            write_all(run, dry_run)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
    return report


def _migrate_to_server(
    source: Path, url: str, dry_run: bool, skip_invalid: bool, progress: Progress | None
) -> MigrationReport:
    """Into PostgreSQL: through a temporary DuckDB file (the staging and checks are DuckDB SQL)."""
    from mcp_state.legacy.to_server import migrate_to_server

    def into(staged: Path) -> MigrationReport:
        return migrate(source, db_path=staged, dry_run=dry_run, skip_invalid=skip_invalid, progress=progress)

    return migrate_to_server(url, into, dry_run)


@contextmanager
def _open(
    path: Path, dry_run: bool, on_wait: Callable[[str], None] | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection a run works on; a database this run created is removed if the run fails."""
    existed = path.exists()
    if dry_run:
        conn = None
        if existed:
            conn = connect_waiting(path, on_wait, config={"access_mode": "READ_ONLY"}, migrate=False)
            if get_schema_version(conn) == 0:  # an empty file: plan against a fresh schema instead
                conn.close()
                conn = None
        if conn is None:
            conn = connect(":memory:")
        try:
            yield conn
        finally:
            conn.close()
        return
    conn = connect_waiting(path, on_wait)
    try:
        yield conn
    except BaseException:
        conn.close()
        if not existed:
            _remove_partial(str(path))
        raise
    conn.close()


@contextmanager
def _memory_bounded(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Cap DuckDB's memory for the run: staged entries beyond it spill to disk, not to RAM."""
    conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        yield
    finally:
        conn.execute("RESET memory_limit")


def connect_waiting(
    path: Path, on_wait: Callable[[str], None] | None, **options: Any
) -> duckdb.DuckDBPyConnection:
    """``connect()``, telling ``on_wait`` first when another process holds the file."""
    if on_wait is None:
        return connect(path, **options)
    try:
        return connect(path, wait=0, **options)
    except DatabaseLockedError as exc:
        holder = re.search(r"PID \d+", str(exc))
        on_wait(
            f"the database {path} is in use by another process{f' ({holder.group()})' if holder else ''}; "
            f"waiting up to {lock_timeout():g}s for it to let go (MCP_STATE_LOCK_TIMEOUT)"
        )
    return connect(path, **options)
