"""Legacy migration into a PostgreSQL database: as into a file, through a temporary DuckDB file.

The staging and checks of a migration are DuckDB SQL (``mcp_state.legacy.migrate``), so a run
into ``postgresql://…`` migrates into a temporary DuckDB file and brings the outcome over:

- **An empty database** gets the whole migrated state, copied in one transaction (``transfer``).
- **A database that holds state** behaves as a file that holds state: its state is copied
  (one snapshot) into the temporary file, the files are migrated into that exactly as into a
  file (the report's new / changed / unchanged / "db only" counts, re-runs changing nothing),
  and then only the difference the migration made is applied to PostgreSQL, in one
  transaction: the rows it changed are replaced, the rows it added inserted. Rows other
  processes wrote meanwhile are kept (the migration never deletes); a row the migration also
  changed takes the files' values, as a re-run would give it. Numbers from a sequence
  (``seq``, ``change_seq``) that the migration gave out are taken again from PostgreSQL's
  sequence in the same order, so they never collide with a concurrent writer's. The word index
  of every item the migration touched is rebuilt there by PostgreSQL's own text
  (``Dialect.knowledge_words_of``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_state.consistency import SEQUENCED
from mcp_state.db import Database
from mcp_state.errors import ConflictError, MigrationError
from mcp_state.gateway import Gateway, rows_to_dicts
from mcp_state.legacy.report import MigrationReport
from mcp_state.repositories.knowledge import reindex_sql
from mcp_state.sharing import shown_location
from mcp_state.transfer import copy_state, insert_rows, require_empty, state_tables

DERIVED = {"knowledge_words", "schema_version"}  # rebuilt on the target, or its own
IDS_PER_STATEMENT = 1_000


def migrate_to_server(url: str, migrate: Callable[[Path], MigrationReport], dry_run: bool) -> MigrationReport:
    """Run ``migrate(staged_file)`` and bring its outcome into the PostgreSQL database ``url``."""
    with tempfile.TemporaryDirectory(prefix="mcp-state-migrate-") as folder:  # owner-only: it holds secrets
        staged, before = Path(folder) / "state.duckdb", Path(folder) / "before.duckdb"
        try:
            require_empty(url)
        except ConflictError:  # it holds state: migrate into a copy of it
            copy_state(url, str(staged))
            shutil.copyfile(staged, before)
        report = migrate(staged)
        if not dry_run:
            if before.exists():
                apply_difference(before, staged, url)
            else:
                copy_state(str(staged), url)
    report.db_path = shown_location(url)
    return report


def apply_difference(before: Path, after: Path, url: str) -> dict[str, int]:
    """Apply to ``url`` what turned the file ``before`` into the file ``after`` (rows changed or
    added; nothing is deleted), in one transaction; ``{table: rows written}``."""
    with Database(str(after), idle_release=None) as db, db.hold() as conn:
        tables = {t: c for t, c in state_tables(db).items() if t not in DERIVED}
        keys = _primary_keys(conn)
        conn.execute(f"ATTACH '{str(before).replace(chr(39), chr(39) * 2)}' AS snap (READ_ONLY)")
        tops = {t: _top(conn, f"snap.{t}", c) for t, c, _ in SEQUENCED if t in tables}
        changes = {table: _added(conn, table, columns) for table, columns in tables.items()}
        conn.execute("DETACH snap")
    written: dict[str, int] = {}
    with Database(url, idle_release=None) as dst:
        target = Gateway(dst)
        with target.transaction():
            for table, rows in changes.items():
                if rows:
                    _renumber(target, table, rows, tops)
                    _replace(target, table, keys.get(table, []), tables[table], rows)
                    written[table] = len(rows)
            items = [row["id"] for row in changes.get("knowledge_items", [])]
            for start in range(0, len(items), IDS_PER_STATEMENT):
                part = items[start : start + IDS_PER_STATEMENT]
                for statement in reindex_sql(", ".join("?" * len(part)), target.dialect):
                    target.execute(statement, part)
    return written


def _primary_keys(conn: Any) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database()"
    ).fetchall()
    return {table: list(columns) for table, columns in rows}


def _top(conn: Any, table: str, column: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()[0])


def _added(conn: Any, table: str, columns: list[str]) -> list[dict[str, Any]]:
    """The rows of ``table`` in the migrated file that the snapshot did not hold as they are."""
    names = ", ".join(columns)
    result = conn.execute(f"SELECT {names} FROM {table} EXCEPT ALL SELECT {names} FROM snap.{table}")
    return rows_to_dicts(result.description, result.fetchall())


def _renumber(target: Gateway, table: str, rows: list[dict[str, Any]], tops: dict[str, int]) -> None:
    """Give the rows the migration numbered (beyond the snapshot's numbers) the target's next ones."""
    for name, column, sequence in SEQUENCED:
        if name == table:
            fresh = sorted((r for r in rows if (r[column] or 0) > tops[table]), key=lambda r: r[column])
            if fresh:
                numbers = target.fetch_all(
                    f"SELECT nextval('{sequence}') AS n FROM generate_series(1, {len(fresh)})"
                )
                for row, number in zip(fresh, sorted(n["n"] for n in numbers), strict=True):
                    row[column] = number


def _replace(
    target: Gateway, table: str, key: list[str], columns: list[str], rows: list[dict[str, Any]]
) -> None:
    """Delete the rows with these keys (a changed row's old values), then insert the rows."""
    if not key:
        raise MigrationError(
            f"the table {table} has no primary key, so a migration cannot tell its changed rows from new "
            "ones; migrate into a new database instead"
        )
    one = "(" + ", ".join("?" for _ in key) + ")"
    for start in range(0, len(rows), IDS_PER_STATEMENT):
        part = rows[start : start + IDS_PER_STATEMENT]
        target.execute(
            f"DELETE FROM {table} WHERE ({', '.join(key)}) IN ({', '.join([one] * len(part))})",
            [row[k] for row in part for k in key],
        )
    insert_rows(target, table, columns, rows)
