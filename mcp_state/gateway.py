"""The one query gateway: every repository reads and writes through it.

- Rows come back as dicts; a second column with an existing name is kept as ``name_2``.
- JSON columns come back as Python lists and dicts; ``Json(value)`` sends one in.
- Timestamps go in as UTC (aware datetimes are converted, naive ones are taken as UTC)
  and come back as timezone-aware UTC datetimes.
- Each operation runs on its own cursor, so threads never share one; writes run in a
  transaction that commits whole or not at all (on DuckDB serialized in the process by
  ``WRITE_LOCK``; PostgreSQL makes concurrent writers wait on row locks instead).
- ``transaction()`` lets a caller group several repository calls (and an audit row) into
  one transaction: repository calls made inside it on the same thread join it.
- ``retrying(fn)`` runs a unit of work again when it collided with a concurrent one
  (PostgreSQL's deadlocks and serialization failures), a few times, never inside an outer
  transaction (the outer unit is the one to run again).
- What differs between DuckDB and PostgreSQL comes from the source's dialect (``mcp_state.dialect``).
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb

from mcp_state.db import MISS, WRITE_LOCK, Database
from mcp_state.dialect import dialect_of
from mcp_state.errors import InvalidArgumentError, TransientConflictError
from mcp_state.schema import JSON_COLUMNS
from mcp_state.write_marks import tables_written

# A DuckDB connection, a Database (either engine), or a PostgreSQL connection (``postgres.PgConnection``).
Source = duckdb.DuckDBPyConnection | Database | Any
T = TypeVar("T")
# A unit of work that collided with a concurrent one runs again, at most this many times in all.
ATTEMPTS = 5


class Json:
    """A parameter to store as a JSON document."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def to_utc(value: datetime) -> datetime:
    """Aware UTC datetime from an aware or naive (taken as UTC) one; refuses one whose UTC time
    falls outside years 1 to 9999 (``0001-01-01T00:00:00+05:00``)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidArgumentError(
            f"the time {value.isoformat()} is outside years 1 to 9999 in UTC; give a time within them"
        ) from None


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


def utc_now() -> datetime:
    """The time every repository stamps rows with: the system clock, unless ``use_clock`` replaced it."""
    return to_utc(_clock())


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Stamp rows with ``clock`` inside the block (tests step it back to check that order follows
    commits, not time). The process has one clock: every gateway and repository reads it."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous


def _param(value: Any) -> Any:
    if isinstance(value, Json):
        return None if value.value is None else json.dumps(value.value, default=str)
    if isinstance(value, datetime):
        return to_utc(value).replace(tzinfo=None)
    return value


def _out(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if name in JSON_COLUMNS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def quote_identifier(name: str) -> str:
    """``name`` as an SQL identifier (both engines): ``audit_log`` -> ``"audit_log"``."""
    return '"' + name.replace('"', '""') + '"'


def column_names(description: Sequence[Sequence[Any]] | None) -> list[str]:
    """Column names with duplicates kept apart: ``id``, ``id_2``, ``id_3``..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for col in description or ():
        name = str(col[0])
        if name in seen:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}_{seen[name]}"
            seen[candidate] = 1
            name = candidate
        else:
            seen[name] = 1
        names.append(name)
    return names


def rows_to_dicts(
    description: Sequence[Sequence[Any]] | None, rows: Sequence[Sequence[Any]]
) -> list[dict[str, Any]]:
    names = column_names(description)
    # Decode by the column's own name: a second ``tags`` renamed ``tags_2`` is JSON all the same.
    columns = list(zip(names, (str(col[0]) for col in description or ()), strict=True))
    return [
        {name: _out(source, value) for (name, source), value in zip(columns, row, strict=True)}
        for row in rows
    ]


_local = threading.local()


class _Transaction:
    """A gateway transaction on this thread: its cursor, and whether BEGIN has been sent."""

    __slots__ = ("begun", "cursor", "written")

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.begun = False
        self.written: set[str] | None = set()  # the tables its statements wrote (None: unknown)

    def wrote(self, tables: frozenset[str] | None) -> None:
        if tables is None or self.written is None:
            self.written = None
        else:
            self.written |= tables


class Gateway:
    """Query access to one database for repositories."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.dialect = dialect_of(source)
        # A Database's marks follow what it writes, and its sessions are the cursors.
        self._db: Database | None = source if isinstance(source, Database) else None

    def write_lock(self) -> AbstractContextManager[Any]:
        """The process-wide write lock on DuckDB (it aborts concurrent writers); nothing on PostgreSQL."""
        return WRITE_LOCK if self.dialect.process_write_lock else nullcontext()

    def retrying(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, run again (up to ``ATTEMPTS`` in all, after a short random
        pause) while it fails on a collision with a concurrent transaction. Inside a transaction
        it runs once: the whole outer unit is what runs again."""
        if not self.dialect.transient_errors or self.in_transaction:
            return fn(*args, **kwargs)
        attempt = 1
        while True:
            try:
                return fn(*args, **kwargs)
            except TransientConflictError:
                if attempt >= ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.005, 0.02) * 2**attempt)
                attempt += 1

    # -- cursors -------------------------------------------------------------------
    def _key(self) -> int:
        return id(self.source)

    def _active_tx(self) -> _Transaction | None:
        txs: dict[int, _Transaction] = getattr(_local, "txs", {})
        return txs.get(self._key())

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        tx = self._active_tx()
        if tx is not None:
            yield tx.cursor
            return
        if self._db is not None:
            with self._db.session(tracked=True) as cursor:  # _run names the tables written
                yield cursor
        else:
            cursor = self.source.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[Gateway]:
        """Run the block as one write transaction; nested calls on this thread join it.

        ``BEGIN`` goes with the block's first statement (one call to DuckDB fewer); a block
        that runs none begins and commits nothing.
        """
        if self._active_tx() is not None:
            yield self
            return
        errors = self.dialect.errors
        with self.write_lock(), self._cursor() as cursor:
            if not hasattr(_local, "txs"):
                _local.txs = {}
            tx = _Transaction(cursor)
            _local.txs[self._key()] = tx
            try:
                try:
                    yield self
                except BaseException:
                    _local.txs.pop(self._key(), None)
                    if tx.begun:
                        with suppress(*errors):
                            cursor.execute("ROLLBACK")
                    raise
                _local.txs.pop(self._key(), None)
                if not tx.begun:
                    return
                try:
                    cursor.execute(self.dialect.commit(tx.written, getattr(self._db, "origin", "")))
                except errors as exc:
                    with suppress(*errors):
                        cursor.execute("ROLLBACK")
                    raise self.dialect.translate(exc) from exc
            finally:
                self._wrote(tx.written)  # once it ended: a reader never sees the mark first

    @property
    def in_transaction(self) -> bool:
        return self._active_tx() is not None

    # -- queries -------------------------------------------------------------------
    def _run(self, cursor: Any, sql: str, params: Sequence[Any]) -> Any:
        tx = self._active_tx()
        written = tables_written(sql) if self._db is not None else frozenset()
        begin = tx is not None and not tx.begun
        if begin:
            assert tx is not None
            tx.begun = True
            if self.dialect.begin_with_statement:
                # DuckDB binds parameters to the last statement: "BEGIN; <sql>" keeps them for <sql>.
                sql = "BEGIN TRANSACTION;\n" + sql
            else:
                cursor.execute("BEGIN")
                begin = False
        try:
            return cursor.execute(sql, [_param(p) for p in params])
        except self.dialect.errors as exc:
            if begin:
                # If <sql> did not even parse, BEGIN did not run either: begin now, so that the
                # rest of the block (should the caller carry on) stays in one transaction.
                with suppress(*self.dialect.errors):  # it did run
                    cursor.execute("BEGIN TRANSACTION")
            translated = self.dialect.translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if written is None or written:  # marked once the statement ran (it commits alone) ...
                if tx is not None:
                    tx.wrote(written)  # ... or once its transaction ended
                else:
                    self._wrote(written)

    def _wrote(self, tables: Iterable[str] | None) -> None:
        """Tell the ``Database`` which tables changed (its ``marks``; the SQL tool's copies follow them)."""
        if self._db is not None and (tables is None or tables):
            self._db.marks.wrote(tables)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._cursor() as cursor:
            result = self._run(cursor, sql, params)
            return rows_to_dicts(result.description, result.fetchall())

    def fetch_one(
        self, sql: str, params: Sequence[Any] = (), *, cache: bool = False
    ) -> dict[str, Any] | None:
        """The first row of a read, or None. ``cache=True``: the answer may come from the
        ``Database``'s read cache (for reads that depend only on the stored data: no clock,
        no randomness); see ``Database`` for why a cached answer is never stale."""
        if cache and self._db is not None and self._active_tx() is None and self._db.caching:
            return self._fetch_one_cached(self._db, sql, params)
        with self._cursor() as cursor:
            result = self._run(cursor, sql, params)
            row = result.fetchone()
            return None if row is None else rows_to_dicts(result.description, [row])[0]

    def _fetch_one_cached(self, db: Database, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        key: tuple[Any, ...] | None = ("fetch_one", sql, *(_param(p) for p in params))
        try:
            hash(key)
        except TypeError:  # a list or dict parameter: not a key
            key = None
        if key is not None:
            found = db.cached(key)
            if found is not MISS:
                return _copy_row(found)
        with db.reading() as (cursor, ticket):
            result = self._run(cursor, sql, params)
            row = result.fetchone()
            answer = None if row is None else rows_to_dicts(result.description, [row])[0]
        if key is not None:
            db.keep(key, answer, ticket)
        return _copy_row(answer)

    def fetch_value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._cursor() as cursor:
            result = self._run(cursor, sql, params)
            row = result.fetchone()
            return None if row is None else _out(str(result.description[0][0]), row[0])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in a transaction; returns the number of rows it changed."""
        with self._write(sql) as cursor:
            result = self._run(cursor, sql, params)
            return self.dialect.rows_changed(result)

    def execute_returning(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one write statement with a RETURNING clause; returns its rows."""
        with self._write(sql) as cursor:
            result = self._run(cursor, sql, params)
            return rows_to_dicts(result.description, result.fetchall())

    @contextmanager
    def _write(self, sql: str) -> Iterator[Any]:
        """A cursor for one write: inside the caller's transaction if there is one; else, for
        one statement, on its own under the write lock (DuckDB commits a lone statement as one
        transaction, durably, so BEGIN and COMMIT would only add two calls); else (a ``;``
        anywhere, even in a string; or on PostgreSQL, which announces the tables written in
        the transaction) in a transaction of its own."""
        lone = self.dialect.lone_writes and ";" not in sql.strip().rstrip(";")
        if self._active_tx() is None and lone:
            with self.write_lock(), self._cursor() as cursor:
                yield cursor
            return
        with self.transaction(), self._cursor() as cursor:
            yield cursor


def _copy_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row the caller may change without changing the cached one (JSON values are lists and dicts)."""
    if row is None:
        return None
    return {k: copy.deepcopy(v) if isinstance(v, list | dict) else v for k, v in row.items()}
