"""The SQL tool's one use of the state database: read the redacted views to copy them.

The worker process never opens the database file; it gets copies of the redacted views'
rows from here, as JSON in chunks of ``CHUNK_ROWS`` rows (the server never holds a whole
table as text). ``changes`` sends a worker only what differs from what it holds:

- a view whose table was not written since the worker's copy was read is not read at all:
  ``Database.write_marks`` gives each table a counter that the gateway moves with every
  write (after it committed), within an epoch that changes whenever something may have been
  written unseen (each opening of the file; a write outside the gateway). A call after
  unrelated operations, or none, costs no query on the database;
- a view whose table was written, or any view in a new epoch, is fingerprinted (row count
  and the sum of its rows' hashes; for the append-only tables with a ``seq`` column, the
  count and the lowest and highest ``seq``): an equal fingerprint sends nothing, only new
  rows are sent for a table that was appended to (``seq`` grew and the rows before are
  unchanged, as with the audit log), the whole view otherwise.

This is the only module of ``mcp_state.sql`` that touches ``Database``: a change in how the
server holds the file (``db.py``) is a change here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import duckdb

from mcp_state.db import Database
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.guard import Catalog, check_statement, check_tree, statement_kind
from mcp_state.sql.runner import VERDICTS_KEPT

CHUNK_ROWS = 20_000
# The worker's in-memory database, which a three-part name may name.
_WORKER_DATABASE = "memory"

_VIEWS_SQL = (
    "SELECT view_name, list(column_name ORDER BY column_index) FROM duckdb_views() "
    "JOIN duckdb_columns() USING (database_name, schema_name) "
    "WHERE database_name = current_database() AND schema_name = ? AND table_name = view_name "
    "GROUP BY ALL ORDER BY view_name"
)

# What a worker holds of one view: {"fp": "count:hashsum", "seq": the highest seq or None}.
TableState = dict[str, Any]


class Snapshot:
    """Copies of the redacted views of ``db``, for the SQL worker."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._views: frozenset[str] | None = None  # their names, lower-case, for the precheck
        self._view_columns: dict[str, list[str]] = {}
        self._views_epoch: int | None = None  # the epoch _view_columns was read in
        self._parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        self._parser_lock = threading.Lock()
        # Statements the precheck accepted, with the views they were accepted against (as in the
        # worker, a verdict depends on the text and the names it may read only).
        self._accepted: OrderedDict[str, frozenset[str]] = OrderedDict()

    def precheck(self, sql: str) -> None:
        """The gate, here too, before a statement goes to a worker: a refusal costs no worker
        (the CLI starts none), and a statement the worker would refuse never reaches it.
        Parsing only, on a private in-memory instance (the database is not touched); a PIVOT
        without IN is left to the worker, which rewrites it."""
        views = self._views
        if views is None:
            with self.db.session(tracked=True) as cursor:  # reads only
                views = frozenset(
                    str(row[0]).lower() for row in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()
                )
            self._views = views
        with self._parser_lock:
            if self._accepted.get(sql) == views:
                self._accepted.move_to_end(sql)
                return
            cursor = self._parser.cursor()
        try:
            statements = cursor.extract_statements(sql) if sql.lstrip()[:5].upper() == "PIVOT" else []
            if len(statements) == 1 and statement_kind(statements[0]) == "MULTI":
                return
            text = check_statement(cursor, sql)
            row = cursor.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
            check_tree(row[0] if row else "", Catalog(database=_WORKER_DATABASE, views=views))
        finally:
            cursor.close()
        with self._parser_lock:
            self._accepted[sql] = views
            while len(self._accepted) > VERDICTS_KEPT:
                self._accepted.popitem(last=False)

    def changes(self, held: dict[str, TableState]) -> Iterator[dict[str, Any]]:
        """The load requests that bring a worker holding ``held`` up to date; the last item is
        ``{"op": "state", "state": ...}``, what it holds afterwards (not sent to the worker).

        A view whose table's write mark (``Database.write_marks``) is the one the worker's copy
        was read under is not read at all; when no view's is, the database is not touched."""
        marks = self.db.write_marks()
        if marks is not None and held and self._views_epoch == marks[0]:
            stale = [name for name in self._view_columns if _mark(marks, name) != _held_mark(held, name)]
            if not stale and held.keys() == self._view_columns.keys():
                yield {"op": "state", "state": held}  # no table written since: no scan
                return
        with self.db.session(tracked=True) as cursor:  # reads only
            marks = self.db.write_marks()  # again, now that the file is open: before any data is read
            views = self._read_views(cursor, marks)
            state: dict[str, TableState] = {}
            for name, columns in views.items():
                old = held.get(name)
                mark = _mark(marks, name)
                if old is not None and mark is not None and old.get("mark") == mark:
                    state[name] = old  # not written since the worker's copy was read
                    continue
                seq = "seq" in columns
                row = cursor.execute(
                    f"SELECT {_fingerprint(seq)}, {'max(seq)' if seq else 'NULL'} FROM {_view(name)} AS t"
                ).fetchone()
                assert row is not None
                state[name] = {"fp": row[0], "seq": row[1], "mark": mark}
                if old is not None and old["fp"] == row[0]:
                    continue
                since = old["seq"] if old is not None and seq and old.get("seq") is not None else None
                if since is not None:
                    prefix = cursor.execute(
                        f"SELECT {_fingerprint(seq)} FROM {_view(name)} AS t WHERE seq <= ?", [since]
                    ).fetchone()
                    if prefix is None or prefix[0] != old["fp"]:  # type: ignore[index]
                        since = None  # not only appended to: copy it whole
                yield from _chunks(cursor, name, since)
            for name in held:
                if name not in views:
                    yield {"op": "drop", "table": name}
        yield {"op": "state", "state": state}

    def _read_views(self, cursor: Any, marks: tuple[int, dict[str, int]] | None) -> dict[str, list[str]]:
        """The redacted views and their columns; read again only in a new epoch (views change
        only by DDL, which starts one)."""
        if marks is None or self._views_epoch != marks[0]:
            self._view_columns = {
                str(name): list(cols)
                for name, cols in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()
            }
            self._views = frozenset(name.lower() for name in self._view_columns)
            self._views_epoch = None if marks is None else marks[0]
        return self._view_columns


def _mark(marks: tuple[int, dict[str, int]] | None, view: str) -> list[int] | None:
    """The write mark of the table behind ``view`` (each redacted view reads the table of its
    name in ``main``): [epoch, counter], or None when writes are not followed."""
    if marks is None:
        return None
    return [marks[0], marks[1].get(view.lower(), 0)]


def _held_mark(held: dict[str, TableState], view: str) -> Any:
    state = held.get(view)
    return None if state is None else state.get("mark")


def _chunks(cursor: Any, name: str, since: Any) -> Iterator[dict[str, Any]]:
    cursor.execute(f"SELECT * FROM {_view(name)} LIMIT 0")
    columns = [[str(col[0]), str(col[1])] for col in cursor.description or []]
    where = "" if since is None else " WHERE seq > ?"
    cursor.execute(
        f"SELECT to_json(t)::VARCHAR FROM {_view(name)} AS t{where}", [] if since is None else [since]
    )
    replace = since is None
    while True:
        rows = cursor.fetchmany(CHUNK_ROWS)
        if rows or replace:
            text = "[" + ",".join(row[0] for row in rows) + "]"
            yield {"op": "load", "table": name, "columns": columns, "rows": text, "replace": replace}
            replace = False
        if len(rows) < CHUNK_ROWS:
            return


def _fingerprint(appended: bool) -> str:
    """Row count and hash sum (one scan); for an append-only table with ``seq`` (the audit log,
    sync history), row count and the lowest and highest ``seq``, which need no scan of the rows."""
    if appended:
        return "count(*)::VARCHAR || ':' || coalesce(min(seq), 0)::VARCHAR || ':' || coalesce(max(seq), 0)::VARCHAR"
    return "count(*)::VARCHAR || ':' || coalesce(sum(hash(t)), 0)::VARCHAR"


def _view(name: str) -> str:
    return f'"{REDACTED_SCHEMA}"."' + name.replace('"', '""') + '"'
