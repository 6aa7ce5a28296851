"""The SQL tool's one use of the state database: read the redacted views to copy them.

The worker process never opens the database file; it gets copies of the redacted views'
rows from here, as JSON in chunks of ``CHUNK_ROWS`` rows (the server never holds a whole
table as text). ``changes`` compares each view's fingerprint (row count and the sum of its
rows' hashes; for the append-only tables with a ``seq`` column, the count and the lowest and
highest ``seq``) with what a worker holds and sends only what differs: nothing for
an unchanged view, only the new rows of a view that was appended to (``seq`` grew and the
rows before are unchanged, as with the audit log), the whole view otherwise.

This is the only module of ``mcp_state.sql`` that touches ``Database``: a change in how the
server holds the file (``db.py``) is a change here. It reads ``Database._generation`` (which
every operation and every reopening bumps) to skip the fingerprints when nothing at all ran
on the database since the last call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import duckdb

from mcp_state.db import Database
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.guard import Catalog, check_statement, check_tree, statement_kind

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
        # The views' state as last read, and the database's generation right after: while the
        # generation stays the same, no operation (hence no write) and no reopening happened.
        self._last: tuple[int, dict[str, TableState]] | None = None
        self._views: frozenset[str] | None = None
        self._parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        self._parser_lock = threading.Lock()

    def precheck(self, sql: str) -> None:
        """The gate, here too, before a statement goes to a worker: a refusal costs no worker
        (the CLI starts none), and a statement the worker would refuse never reaches it.
        Parsing only, on a private in-memory instance (the database is not touched); a PIVOT
        without IN is left to the worker, which rewrites it."""
        views = self._views
        if views is None:
            with self.db.session() as cursor:
                views = frozenset(
                    str(row[0]).lower() for row in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()
                )
            self._views = views
        with self._parser_lock:
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

    def changes(self, held: dict[str, TableState]) -> Iterator[dict[str, Any]]:
        """The load requests that bring a worker holding ``held`` up to date; the last item is
        ``{"op": "state", "state": ...}``, what it holds afterwards (not sent to the worker)."""
        last = self._last
        if last is not None and last[0] == self.db._generation and last[1] == held:
            yield {"op": "state", "state": held}  # nothing ran on the database since: no scan
            return
        before = self.db._generation
        with self.db.session() as cursor:
            views = {
                str(name): list(cols)
                for name, cols in cursor.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall()
            }
            state: dict[str, TableState] = {}
            for name, columns in views.items():
                seq = "seq" in columns
                row = cursor.execute(
                    f"SELECT {_fingerprint(seq)}, {'max(seq)' if seq else 'NULL'} FROM {_view(name)} AS t"
                ).fetchone()
                assert row is not None
                state[name] = {"fp": row[0], "seq": row[1]}
                old = held.get(name)
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
        self._views = frozenset(name.lower() for name in views)
        after = self.db._generation
        # Kept only if nothing else held the database meanwhile (a session counts two changes).
        self._last = (after, state) if after == before + 2 else None
        yield {"op": "state", "state": state}


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
