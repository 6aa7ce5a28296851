"""The SQL tool's one use of the state database: read the redacted views to copy them.

The worker process never opens the database file (nor any file); it gets copies of the
redacted views from here. ``changes(held, wanted)`` sends a worker only what it lacks:

- **only the views a statement reads.** Every view is declared in the worker (its columns,
  no rows: ``sql_schema`` and the gate see them all), but rows are copied only for the
  views the statement names, as the gate resolved them (``precheck`` returns them). A
  statement the precheck cannot resolve (a PIVOT without IN) gets every view;
- **only what changed.** A view whose table was not written since the worker's copy was
  read is not read at all: ``Database.write_marks`` gives each table a counter that the
  gateway moves with every write (after it committed), within an epoch that changes
  whenever something may have been written unseen (each opening of the file; a write
  outside the gateway). A written view, or any view in a new epoch, is fingerprinted (row
  count and hash sum; for the append-only tables with a ``seq`` column, the count and the
  lowest and highest ``seq``): an equal fingerprint sends nothing, new rows only are sent
  for a table that was appended to, the whole view otherwise;
- **in chunks, letting go of the file between them.** Rows go as one JSON array of text
  per column, ``CHUNK_ROWS`` rows at a time, as raw parts of the worker's frame. A view
  with ``seq`` (the audit log) is read chunk by chunk, each in its own short operation on
  the database, so another process that asks for the file gets it between two chunks
  (``mcp_state.sharing``), and the worker loads a chunk while the file is free. The copy
  stays one consistent state: it reads only the rows up to the highest ``seq`` seen when it
  started, and whenever the table's write mark moved or the file was reopened meanwhile, it
  checks that those rows are still exactly the ones it started with (their fingerprint),
  and starts the copy again if not (rows were deleted, as by ``audit archive``). After
  ``REDOS`` such restarts, the last try holds the file throughout. Other views (small,
  without ``seq``) are read in one operation.

Besides the views: ``audit_archive``, the audit rows ``mcp-state audit archive`` moved to
Parquet files (read here, by the server, from the archive folder; refreshed when the set of
files changes), and ``audit_all``, a view of both in the worker.

This is the only module of ``mcp_state.sql`` that touches ``Database``: a change in how the
server holds the file (``db.py``) is a change here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Generator, Iterator
from typing import Any

import duckdb

from mcp_state.archive import ArchiveReader
from mcp_state.db import Database
from mcp_state.gateway import quote_identifier
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.guard import Catalog, check_statement, check_tree, statement_kind
from mcp_state.sql.runner import ARCHIVE, VERDICTS_KEPT

CHUNK_ROWS = 25_000
# Restarts of a chunked copy (its rows changed under it) before the last try holds the file.
REDOS = 2
# The worker's in-memory database, which a three-part name may name.
_WORKER_DATABASE = "memory"
# Views of the worker over other copies: name -> the copies, in order. A row of the archive
# that is also live (``audit archive`` stopped between writing its file and deleting the rows)
# counts once, by ``seq``.
UNIONS = {"audit_all": ("audit_log", ARCHIVE)}
UNION_KEY = "seq"

_VIEWS_SQL = (
    "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? "
    "ORDER BY view_name"
)

# What a worker holds of one copy: {"columns": [[name, type], ...], "fp": the fingerprint of
# its rows (None: declared, no rows copied), "seq": the highest seq or None, "mark": the write
# mark it was read under}.
TableState = dict[str, Any]
Request = dict[str, Any]


class Snapshot:
    """Copies of the redacted views of ``db`` (and of the audit archive), for the SQL worker."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.archive = ArchiveReader.of(db.path)
        self._views: frozenset[str] | None = None  # their names, lower-case, for the precheck
        self._view_columns: dict[str, list[list[str]]] = {}
        self._views_epoch: int | None = None  # the epoch _view_columns was read in
        self._parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        self._parser_lock = threading.Lock()
        # Statements the precheck accepted, with the names it was accepted against (as in the
        # worker, a verdict depends on the text and the names it may read only) and the views
        # it reads (None: unknown, all).
        self._accepted: OrderedDict[str, tuple[frozenset[str], frozenset[str] | None]] = OrderedDict()

    def precheck(self, sql: str) -> frozenset[str] | None:
        """The gate, here too, before a statement goes to a worker: a refusal costs no worker
        (the CLI starts none), and a statement the worker would refuse never reaches it.
        Parsing only, on a private in-memory instance (the database is not touched); a PIVOT
        without IN is left to the worker, which rewrites it. Returns the views the statement
        reads (None: it could not tell; every view)."""
        views = self._views
        if views is None:
            with self.db.reading() as (cursor, _):
                views = frozenset(
                    str(row[0]).lower() for row in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()
                ) | frozenset((ARCHIVE, *UNIONS))
            self._views = views
        with self._parser_lock:
            accepted = self._accepted.get(sql)
            if accepted is not None and accepted[0] == views:
                self._accepted.move_to_end(sql)
                return accepted[1]
            cursor = self._parser.cursor()
        try:
            statements = cursor.extract_statements(sql) if sql.lstrip()[:5].upper() == "PIVOT" else []
            if len(statements) == 1 and statement_kind(statements[0]) == "MULTI":
                return None
            text = check_statement(cursor, sql)
            row = cursor.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
            reads = check_tree(row[0] if row else "", Catalog(database=_WORKER_DATABASE, views=views))
        finally:
            cursor.close()
        with self._parser_lock:
            self._accepted[sql] = (views, reads)
            while len(self._accepted) > VERDICTS_KEPT:
                self._accepted.popitem(last=False)
        return reads

    def changes(self, held: dict[str, TableState], wanted: frozenset[str] | None = None) -> Iterator[Request]:
        """The requests that bring a worker holding ``held`` up to date for a statement reading
        ``wanted`` (None: every view; empty: none, as for ``sql_schema``); the last item is
        ``{"op": "state", "state": ...}``, what it holds afterwards (not sent to the worker).

        A view whose table's write mark is the one the worker's copy was read under is not
        read at all; when no wanted view's is, the database is not touched."""
        marks = self.db.write_marks()
        if (
            marks is not None
            and held
            and self._views_epoch == marks[0]
            and held.keys() >= self._view_columns.keys()
        ):
            needed = self._needed(wanted)
            fresh = all(
                held[n]["fp"] is not None and (n == ARCHIVE or _mark(marks, n) == held[n]["mark"])
                for n in needed
            )
            if fresh and (ARCHIVE not in needed or self.archive.fingerprint() == held[ARCHIVE]["fp"]):
                yield {"op": "state", "state": held}  # nothing written since: no scan
                return
        with self.db.reading() as (cursor, _):
            views = self._read_views(cursor, self.db.write_marks())
        state: dict[str, TableState] = {}
        for name, columns in views.items():  # declare what the worker lacks (no rows yet)
            old = held.get(name)
            if old is not None and old["columns"] == columns:
                state[name] = old
            elif name in UNIONS:
                yield {"op": "union", "table": name, "of": list(UNIONS[name]), "key": UNION_KEY}
                state[name] = {"columns": columns, "fp": "view", "seq": None, "mark": None}
            else:
                yield _load(name, columns, [], replace=True)
                state[name] = {"columns": columns, "fp": None, "seq": None, "mark": None}
        for name in held.keys() - views.keys():
            yield {"op": "drop", "table": name}
        for name in sorted(self._needed(wanted)):
            if name == ARCHIVE:
                state[name] = yield from self._copy_archive(state[name])
            else:
                state[name] = yield from self._copy_view(name, state[name])
        yield {"op": "state", "state": state}

    def _needed(self, wanted: frozenset[str] | None) -> set[str]:
        """The copies behind ``wanted`` (None: all), views of the worker expanded."""
        names = set(self._view_columns) if wanted is None else set(wanted) & set(self._view_columns)
        for union, members in UNIONS.items():
            if union in names:
                names.discard(union)
                names.update(members)
        return names

    def _read_views(
        self, cursor: Any, marks: tuple[int, dict[str, int]] | None
    ) -> dict[str, list[list[str]]]:
        """The redacted views and their columns (plus the archive's and ``audit_all``); read again
        only in a new epoch (views change only by DDL, which starts one)."""
        if marks is None or self._views_epoch != marks[0]:
            views = {}
            for (name,) in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall():
                # The columns as the view has them now (duckdb_columns() may still list those the
                # view was created with, before a column was added to its table).
                cursor.execute(f"SELECT * FROM {_view(name)} LIMIT 0")
                views[str(name)] = [[str(col[0]), str(col[1])] for col in cursor.description or []]
            audit = views.get("audit_log")
            if audit is not None:
                views[ARCHIVE] = audit
                views.update(dict.fromkeys(UNIONS, audit))
            self._view_columns = views
            self._views = frozenset(name.lower() for name in views)
            self._views_epoch = None if marks is None else marks[0]
        return self._view_columns

    def _copy_view(self, name: str, old: TableState) -> Generator[Request, None, TableState]:
        """Bring the worker's copy of view ``name`` up to date; returns what it then holds."""
        columns = old["columns"]
        seq = any(column == "seq" for column, _ in columns)
        for attempt in range(REDOS + 1):
            holding = not seq or attempt == REDOS  # the last try (or a view without seq): one operation
            with self.db.reading() as (cursor, _):
                marks = self.db.write_marks()
                mark = _mark(marks, name)
                if old["fp"] is not None and mark is not None and old["mark"] == mark:
                    return old  # not written since the worker's copy was read
                row = cursor.execute(
                    f"SELECT {_fingerprint(seq)}, {'max(seq)' if seq else 'NULL'} FROM {_view(name)} AS t"
                ).fetchone()
                assert row is not None
                new = {"columns": columns, "fp": row[0], "seq": row[1], "mark": mark}
                if old["fp"] == row[0]:
                    return new
                since = old["seq"] if seq and old["fp"] is not None and old["seq"] is not None else None
                if since is not None and _prefix(cursor, name, since) != old["fp"]:
                    since = None  # not only appended to: copy it whole
                if holding:
                    replace = since is None
                    for chunk in _chunks(cursor, _view(name), columns, since, row[1]):
                        yield _load(name, columns, chunk, replace=replace)
                        replace = False
                    if replace:  # empty: the copy too
                        yield _load(name, columns, [], replace=True)
                    return new
            consistent = yield from self._copy_chunked(name, columns, since, new, marks)
            if consistent:
                return new
            old = {**old, "fp": None}  # rows changed under the copy: start it again, whole
        raise AssertionError("unreachable: the last try holds the file")

    def _copy_chunked(
        self,
        name: str,
        columns: list[list[str]],
        since: int | None,
        new: TableState,
        marks: tuple[int, dict[str, int]] | None,
    ) -> Generator[Request, None, bool]:
        """Copy the rows of ``name`` with ``since < seq <= new["seq"]``, each chunk in its own
        operation on the database; False when those rows changed in between (the copy is void)."""
        replace, low = since is None, since
        while True:
            with self.db.reading() as (cursor, _):
                now = self.db.write_marks()  # written, or reopened, since the last chunk?
                moved = (
                    now is None
                    or marks is None
                    or now[0] != marks[0]
                    or _mark(now, name) != _mark(marks, name)
                )
                if moved and _prefix(cursor, name, new["seq"]) != new["fp"]:
                    return False
                marks = now
                chunk = next(_chunks(cursor, _view(name), columns, low, new["seq"], once=True), None)
            if chunk is None:
                if replace:
                    yield _load(name, columns, [], replace=True)
                return True
            yield _load(name, columns, chunk[1], replace=replace)
            replace, low = False, chunk[0]

    def _copy_archive(self, old: TableState) -> Generator[Request, None, TableState]:
        """The archive's rows, read from its Parquet files when the set of files changed."""
        fingerprint = self.archive.fingerprint()
        if old["fp"] == fingerprint:
            return old
        columns = old["columns"]
        with self.archive.reading(columns) as (cursor, source):
            replace = True
            for chunk in _chunks(cursor, source, columns, None, None):
                yield _load(ARCHIVE, columns, chunk, replace=replace)
                replace = False
        if replace:
            yield _load(ARCHIVE, columns, [], replace=True)
        return {"columns": columns, "fp": fingerprint, "seq": None, "mark": None}


def _load(table: str, columns: list[list[str]], parts: list[bytes], replace: bool) -> Request:
    return {
        "op": "load",
        "table": table,
        "columns": columns,
        "parts": parts or [b"[]"] * len(columns),
        "replace": replace,
    }


def _mark(marks: tuple[int, dict[str, int]] | None, view: str) -> list[int] | None:
    """The write mark of the table behind ``view`` (each redacted view reads the table of its
    name in ``main``): [epoch, counter], or None when writes are not followed."""
    if marks is None:
        return None
    return [marks[0], marks[1].get(view.lower(), 0)]


def _prefix(cursor: Any, name: str, top: Any) -> Any:
    """The fingerprint of the rows of ``name`` with ``seq <= top``."""
    row = cursor.execute(
        f"SELECT {_fingerprint(True)} FROM {_view(name)} AS t WHERE seq <= ?", [top]
    ).fetchone()
    return None if row is None else row[0]


def _chunks(
    cursor: Any, source: str, columns: list[list[str]], low: Any, high: Any, *, once: bool = False
) -> Iterator[Any]:
    """The rows of ``source`` as chunks of ``CHUNK_ROWS`` rows, each a list of per-column JSON
    arrays of text (UTF-8). With ``seq``: only ``low < seq <= high`` (None: unbounded), in
    ``seq`` order, one query per chunk; ``once``: only the first chunk, as ``(last seq, parts)``.
    Without: the whole source, one query."""
    seq = any(column == "seq" for column, _ in columns)
    order = "seq" if seq else "__row"
    lists = ", ".join(
        f"coalesce(to_json(list({quote_identifier(c)}::VARCHAR ORDER BY {order})), '[]')::VARCHAR"
        for c, _ in columns
    )
    picks = ", ".join(quote_identifier(c) for c, _ in columns)
    if not seq:
        cursor.execute(
            f"SELECT {lists} FROM (SELECT {picks}, row_number() OVER () AS __row FROM {source}) "
            f"GROUP BY (__row - 1) // {CHUNK_ROWS} ORDER BY min(__row)"
        )
        while (row := cursor.fetchone()) is not None:
            yield [text.encode("utf-8") for text in row]
        return
    while True:
        row = cursor.execute(
            f"SELECT count(*), max(seq), {lists} FROM (SELECT {picks} FROM {source} "
            "WHERE seq > coalesce($1, -9223372036854775808) AND seq <= coalesce($2, 9223372036854775807) "
            f"ORDER BY seq LIMIT {CHUNK_ROWS})",
            [low, high],
        ).fetchone()
        if row is None or not row[0]:
            return
        parts = [text.encode("utf-8") for text in row[2:]]
        if once:
            yield row[1], parts
            return
        yield parts
        if row[0] < CHUNK_ROWS:
            return
        low = row[1]


def _fingerprint(appended: bool) -> str:
    """Row count and hash sum (one scan); for an append-only table with ``seq`` (the audit log,
    sync history), row count and the lowest and highest ``seq``, which need no scan of the rows."""
    if appended:
        return "count(*)::VARCHAR || ':' || coalesce(min(seq), 0)::VARCHAR || ':' || coalesce(max(seq), 0)::VARCHAR"
    return "count(*)::VARCHAR || ':' || coalesce(sum(hash(t)), 0)::VARCHAR"


def _view(name: str) -> str:
    return f"{quote_identifier(REDACTED_SCHEMA)}.{quote_identifier(name)}"
