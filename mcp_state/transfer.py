"""Copy the whole state from one database to another: a DuckDB file to PostgreSQL and back.

``copy_state(source, target)`` copies every table of the state (tokens, the audit log, the
word index and ``schema_version`` included) into an empty target of the same schema version:

- The target is opened (a new file is created, a new PostgreSQL database gets the schema) and
  must hold no state yet: a target with rows in any table is refused in one line, and a file
  this copy created is removed again if the copy fails.
- The source is read in one snapshot, table by table in chunks (memory stays bounded), and
  the rows are written through the target's gateway (one home for the engine differences:
  placeholders, JSON, timestamps) in one transaction: the target gets all of it or nothing.
- Each sequence (``consistency.SEQUENCED``) is advanced past the numbers copied, so the next
  audit row, sync run or knowledge change numbers on from there.
- After the commit the target's rows are counted again, table by table, against the source.

It is also how legacy migration and export reach PostgreSQL (``mcp_state.legacy``): they run
on a temporary DuckDB file that is copied in (or out) here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mcp_state.consistency import SEQUENCED
from mcp_state.db import Database
from mcp_state.dialect import dialect_of, is_postgres_url
from mcp_state.errors import ConflictError, InvalidArgumentError, SchemaError
from mcp_state.gateway import Gateway, Json, rows_to_dicts
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.schema import JSON_COLUMNS
from mcp_state.sharing import require_database, shown_location

CHUNK_ROWS = 5_000  # rows read from the source at a time
PARAMS_PER_INSERT = 5_000  # values sent in one INSERT (PostgreSQL takes at most 65,535)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def copy_state(source: str, target: str) -> dict[str, Any]:
    """Copy the state at ``source`` into the empty ``target``; ``{from, to, tables: {name: rows}, rows}``."""
    source = require_database(source)
    if _same(source, target):
        raise InvalidArgumentError("--from and --to name the same database; copy into another one")
    created = not is_postgres_url(target) and not Path(target).exists()
    try:
        with Database(source, idle_release=None) as src, Database(target, idle_release=None) as dst:
            tables = state_tables(src)
            _check_same_schema(dst, tables, target)
            _require_empty(dst, target)
            counts = _copy(src, dst, tables)
            _verify(dst, counts, target)
            TokenRepository(dst).publish()  # a file's token list for the HTTP server
    except BaseException:
        if created:
            _remove_file(target)
        raise
    return {
        "from": shown_location(source),
        "to": shown_location(target),
        "tables": counts,
        "rows": sum(counts.values()),
    }


EMPTY_ONLY = "copy only into an empty database: a new file, or a new PostgreSQL database (createdb NAME)"


def require_empty(location: str, advice: str = EMPTY_ONLY) -> None:
    """Refuse (``ConflictError``) a database that already holds state; a missing file is empty.
    ``advice`` ends the message: what to do instead."""
    if not is_postgres_url(location) and not Path(location).exists():
        return
    with Database(location, idle_release=None) as db:
        _require_empty(db, location, advice)


# -- what is copied ----------------------------------------------------------------------------
def state_tables(db: Database) -> dict[str, list[str]]:
    """Every table of the state with its columns in order, from the catalog (both engines have it)."""
    rows = Gateway(db).fetch_all(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name IN ("
        "  SELECT table_name FROM information_schema.tables "
        "  WHERE table_schema = current_schema() AND table_type = 'BASE TABLE') "
        "ORDER BY table_name, ordinal_position"
    )
    tables: dict[str, list[str]] = {}
    for row in rows:
        table, column = str(row["table_name"]), str(row["column_name"])
        if not (_NAME.fullmatch(table) and _NAME.fullmatch(column)):
            raise SchemaError(
                f"the source has a table or column named {table}.{column!r}, not one of the state's"
            )
        tables.setdefault(table, []).append(column)
    return tables


def _check_same_schema(dst: Database, tables: dict[str, list[str]], target: str) -> None:
    theirs = state_tables(dst)
    for table, columns in tables.items():
        if sorted(theirs.get(table, [])) != sorted(columns):
            raise SchemaError(
                f"{shown_location(target)} has no table {table} with the source's columns: the two "
                "databases have different schemas. Use the same mcp-state version on both."
            )


def _require_empty(db: Database, location: str, advice: str = EMPTY_ONLY) -> None:
    held = [f"{n} rows in {table}" for table, n in count_rows(db).items() if n and table != "schema_version"]
    if held:
        raise ConflictError(
            f"{shown_location(location)} already holds state ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}); {advice}"
        )


# -- copying ---------------------------------------------------------------------------------------
def _copy(src: Database, dst: Database, tables: dict[str, list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    target = Gateway(dst)
    with _snapshot(src) as read, target.transaction():
        target.execute("DELETE FROM schema_version")  # the source's history of migrations, as it was
        for table, columns in tables.items():
            counts[table] = _copy_table(read, target, table, columns)
        _advance_sequences(target, set(tables))
    return counts


@contextmanager
def _snapshot(db: Database) -> Iterator[Any]:
    """A cursor on ``db`` inside one read transaction: every table is read as of one moment."""
    with db.session() as cursor:
        cursor.execute(dialect_of(db).begin_snapshot)
        try:
            yield cursor
        finally:
            with suppress(Exception):
                cursor.execute("ROLLBACK")


def _copy_table(read: Any, target: Gateway, table: str, columns: list[str]) -> int:
    result = read.execute(f"SELECT {', '.join(columns)} FROM {table}")
    copied = 0
    while chunk := result.fetchmany(CHUNK_ROWS):
        rows = rows_to_dicts(result.description, chunk)
        insert_rows(target, table, columns, rows)
        copied += len(rows)
    return copied


def insert_rows(target: Gateway, table: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts by column) into ``table``, many rows a statement."""
    names = ", ".join(columns)
    row_sql = "(" + ", ".join("?" for _ in columns) + ")"
    per_insert = max(1, PARAMS_PER_INSERT // len(columns))
    for start in range(0, len(rows), per_insert):
        part = rows[start : start + per_insert]
        params = [_value(column, row[column]) for row in part for column in columns]
        target.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(part))}", params)


def _value(column: str, value: Any) -> Any:
    return Json(value) if column in JSON_COLUMNS and value is not None else value


def _advance_sequences(target: Gateway, tables: set[str]) -> None:
    """Move each sequence past the largest number copied (a sequence only moves forward)."""
    for table, column, sequence in SEQUENCED:
        if table not in tables:
            continue
        top = target.fetch_value(f"SELECT max({column}) FROM {table}")
        if top is None:
            continue
        step = int(top) - int(target.fetch_value(f"SELECT nextval('{sequence}')"))
        if step > 0:
            target.fetch_value(f"SELECT max(nextval('{sequence}')) FROM generate_series(1, {step})")


def count_rows(db: Database) -> dict[str, int]:
    """Every table of the state with its number of rows (each table read whole)."""
    g = Gateway(db)
    return {table: int(g.fetch_value(f"SELECT count(*) FROM {table}")) for table in state_tables(db)}


def _verify(dst: Database, counts: dict[str, int], target: str) -> None:
    now = count_rows(dst)
    for table, expected in counts.items():
        found = now.get(table, 0)
        if found != expected:
            raise ConflictError(
                f"{shown_location(target)} holds {found} rows in {table} after the copy, not {expected}; "
                "another process wrote to it meanwhile. Copy again into a new empty database."
            )


# -- locations ----------------------------------------------------------------------------------------
def _same(source: str, target: str) -> bool:
    if is_postgres_url(source) or is_postgres_url(target):
        return shown_location(source) == shown_location(target)
    return os.path.realpath(source) == os.path.realpath(target)


def _remove_file(path: str) -> None:
    for leftover in (path, path + ".wal", path + ".tokens"):
        with suppress(OSError):
            os.unlink(leftover)
