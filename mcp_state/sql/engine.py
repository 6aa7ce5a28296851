"""The read-only SQL engine: the gate (``guard``) plus execution layers 4 and 6.

4. Every statement runs on its own cursor, inside ``BEGIN TRANSACTION READ ONLY`` that is
   always rolled back, with ``search_path`` set to the redacted views.
6. A time limit twice over: DuckDB's ``max_execution_time`` for the cursor, and a watchdog
   timer that calls ``interrupt()`` shortly after; the instance's ``memory_limit`` (set by
   ``hardening``); and rows fetched lazily, ``limit + 1`` of them, so a huge result never
   materialises and ``truncated`` is exact.

The engine also checks that the instance is hardened (layer 5, ``hardening``), once each time
the file is opened, and refuses to run anything on one that is not. Values come back JSON-safe (``json_safe``); the output is capped
at ``max_output_chars`` characters with a message saying how to narrow the query.

    engine = SqlEngine(hardened_database(path))
    engine.query("SELECT action, count(*) FROM audit_log GROUP BY ALL", limit=10)
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb

from mcp_state.db import Database, system_db_path
from mcp_state.errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    InvalidSQLError,
    NotFoundError,
    QueryTimeoutError,
    StateError,
)
from mcp_state.gateway import column_names
from mcp_state.schema import COLUMN_DESCRIPTIONS, REDACTED_FLAG_COLUMNS, REDACTED_SCHEMA, TABLE_DESCRIPTIONS
from mcp_state.sql.guard import (
    MAX_SQL_CHARS,
    METADATA_VIEWS,
    TABLE_FUNCTIONS,
    Catalog,
    check_size,
    check_statement,
    check_tree,
    statement_kind,
)
from mcp_state.sql.hardening import REQUIRED_SETTINGS, hardened_database, hardening_problems
from mcp_state.sql.types import (
    SqlColumn,
    SqlExplainResult,
    SqlQueryResult,
    SqlSchemaColumn,
    SqlSchemaResult,
    SqlSchemaTable,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OUTPUT_CHARS = 50_000
DEFAULT_TIMEOUT = 10.0
# The watchdog fires this long after DuckDB's own limit, in case that one is not checked.
WATCHDOG_GRACE = 0.1
# Accepted statements whose verdict is kept (per opening of the file), most recently used first.
VERDICTS_KEPT = 512

_MAX_SAFE_INT = 2**53 - 1

_SETTINGS_SQL = "SELECT " + ", ".join(f"current_setting('{name}')" for name in REQUIRED_SETTINGS)


class SqlEngine:
    """Read-only SQL over one hardened ``Database``; safe to share between threads."""

    def __init__(
        self,
        db: Database,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_limit: int = MAX_LIMIT,
        max_output_chars: int = MAX_OUTPUT_CHARS,
        max_sql_chars: int = MAX_SQL_CHARS,
    ) -> None:
        if timeout <= 0:
            raise InvalidArgumentError(f"the SQL time limit must be positive; got {timeout}")
        self.db = db
        self.timeout = float(timeout)
        self.max_limit = max_limit
        self.max_output_chars = max_output_chars
        self.max_sql_chars = max_sql_chars
        self._catalog: Catalog | None = None
        self._catalog_lock = threading.Lock()
        self._verdicts: OrderedDict[str, str] = OrderedDict()  # accepted SQL text -> its statement
        self._hardened_root: duckdb.DuckDBPyConnection | None = None
        self._watchdog = Watchdog()
        self._local = threading.local()

    # -- the three operations ---------------------------------------------------------------
    def query(self, sql: str, limit: int = DEFAULT_LIMIT) -> SqlQueryResult:
        """Run one read-only statement; at most ``limit`` rows, ``truncated`` when more exist."""
        started = time.perf_counter()
        limit = self._check_limit(limit)
        check_size(sql, self.max_sql_chars)
        with self._session() as cursor:
            self._check(cursor, sql)
            try:
                cursor.execute(sql)
                description = cursor.description or []
                raw = cursor.fetchmany(limit + 1)
            except duckdb.Error as exc:
                raise self._translate(exc) from None
        more = len(raw) > limit
        types = [str(col[1]) for col in description]
        columns: list[SqlColumn] = [
            {"name": name, "type": type_}
            for name, type_ in zip(column_names(description), types, strict=True)
        ]
        convert = [converter(t) for t in types]
        rows, capped = self._cap([[c(v) for c, v in zip(convert, row, strict=True)] for row in raw[:limit]])
        result: SqlQueryResult = {
            "columns": columns,
            "rows": rows,
            "row_count": len(rows),
            "truncated": more or capped,
            "limit": limit,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if capped:
            result["message"] = (
                f"output capped at {self.max_output_chars:,} characters after {len(rows)} rows; narrow the query: "
                "select fewer or shorter columns (left(col, 100)), aggregate, filter with WHERE, or lower the limit"
            )
        elif more:
            result["message"] = (
                f"more rows exist beyond the limit of {limit}; aggregate, filter with WHERE, ORDER BY what matters, "
                f"or raise the limit (at most {self.max_limit:,})"
            )
        return result

    def explain(self, sql: str) -> SqlExplainResult:
        """DuckDB's plan of one read-only statement; the statement itself is not run."""
        started = time.perf_counter()
        check_size(sql, self.max_sql_chars)
        with self._session() as cursor:
            text = self._check(cursor, sql)
            explain_sql = f"EXPLAIN {text.strip()}\n"
            try:
                statements = cursor.extract_statements(explain_sql)
                if len(statements) != 1 or statement_kind(statements[0]) != "EXPLAIN":
                    raise InvalidSQLError("the statement could not be explained; send one SELECT")
                plan_rows = cursor.execute(explain_sql).fetchall()
            except duckdb.Error as exc:
                raise self._translate(exc) from None
        plan = "\n".join(str(row[-1]).rstrip() for row in plan_rows)
        return {"plan": plan, "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)}

    def schema(self, table: str | None = None) -> SqlSchemaResult:
        """The redacted views the SQL tool reads: columns, types and descriptions."""
        tables: dict[str, list[SqlSchemaColumn]] = {}
        with self._session() as cursor:
            names = cursor.execute(
                "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? "
                "ORDER BY view_name",
                [REDACTED_SCHEMA],
            ).fetchall()
            for (name,) in names:
                # Bound now, not read from the catalog: a view's catalog entry keeps the columns it
                # had when created, while SELECT * in it follows columns added to its table since.
                cursor.execute(
                    f"SELECT * FROM {quote_identifier(REDACTED_SCHEMA)}.{quote_identifier(name)} LIMIT 0"
                )
                tables[name] = [
                    {"name": column, "type": str(col[1]), "description": _describe(name, column)}
                    for column, col in zip(
                        column_names(cursor.description), cursor.description or [], strict=True
                    )
                ]
        if table is not None:
            wanted = table.strip().lower()
            if wanted.startswith(f"{REDACTED_SCHEMA}."):
                wanted = wanted[len(REDACTED_SCHEMA) + 1 :]
            matches = {name: cols for name, cols in tables.items() if name.lower() == wanted}
            if not matches:
                raise NotFoundError(
                    f"no table '{table}' is visible to the SQL tool; it can read: {', '.join(sorted(tables))}"
                )
            tables = matches
        listed: list[SqlSchemaTable] = [
            {"name": name, "description": TABLE_DESCRIPTIONS.get(name, ""), "columns": cols}
            for name, cols in sorted(tables.items())
        ]
        return {
            "schema": REDACTED_SCHEMA,
            "tables": listed,
            "note": (
                f"Each table is a view in schema {REDACTED_SCHEMA} without its secret columns (flags such as "
                f"has_password say whether one is set); write users or {REDACTED_SCHEMA}.users. Also readable: "
                f"CTEs, information_schema ({', '.join(sorted(METADATA_VIEWS))}), and the table functions "
                f"{', '.join(sorted(TABLE_FUNCTIONS))}."
            ),
        }

    # -- layers 4 and 6: the cursor, the transaction, the time limit ----------------------
    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor, in a read-only transaction that is always rolled back.

        Each thread keeps one cursor per opening of the file, with the session settings (the
        redacted views first on the search path, the time limit) applied once; a cursor that
        saw any failure, or whose time ran out, is closed and the next call makes a new one.
        """
        with self.db.hold() as root:
            cursor = self._begin(root)
            token = self._watchdog.watch(cursor, self.timeout + WATCHDOG_GRACE)
            clean = False
            try:
                self._check_hardened(cursor, root)
                yield cursor
                clean = True
            finally:
                clean = self._watchdog.release(token) and clean
                try:
                    cursor.execute("ROLLBACK")
                except duckdb.Error:
                    clean = False  # an interrupted or failed transaction; closing the cursor ends it
                if not clean:
                    self._discard(cursor)

    def _begin(self, root: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """This thread's cursor in a new read-only transaction (a kept cursor that cannot start
        one, say closed underneath, is replaced once)."""
        for attempt in (1, 2):
            cursor = self._cursor(root)
            try:
                cursor.execute("BEGIN TRANSACTION READ ONLY")
                return cursor
            except duckdb.Error as exc:
                self._discard(cursor)
                if attempt == 2:
                    raise DatabaseUnavailableError(
                        f"the read-only SQL tool could not start a transaction: {self._scrub(_message(exc))}"
                    ) from None
        raise AssertionError("unreachable")

    def _cursor(self, root: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on ``root`` (the file's current opening), set up on first use."""
        kept = self._local.__dict__
        if kept.get("root") is root and kept.get("cursor") is not None:
            return kept["cursor"]
        cursor = root.cursor()
        try:
            cursor.execute(
                f"SET SESSION search_path = '{REDACTED_SCHEMA}'; "
                f"SET SESSION max_execution_time = {max(1, round(self.timeout * 1000))}"
            )
        except duckdb.CatalogException:
            cursor.close()
            raise DatabaseUnavailableError(
                f"the database has no redacted views (schema {REDACTED_SCHEMA}); open it once with this "
                "mcp-state so that its migrations apply, then retry"
            ) from None
        except duckdb.Error as exc:
            cursor.close()
            raise DatabaseUnavailableError(
                "the read-only SQL tool is off: the database was not opened with its hardening "
                f"({self._scrub(_message(exc))}); open it with mcp_state.sql.hardened_database"
            ) from None
        # The previous opening's cursor (if any) was closed with its root.
        kept["root"], kept["cursor"] = root, cursor
        return cursor

    def _discard(self, cursor: duckdb.DuckDBPyConnection) -> None:
        kept = self._local.__dict__
        if kept.get("cursor") is cursor:
            kept["root"] = kept["cursor"] = None
        with suppress(duckdb.Error):
            cursor.close()

    def _check_hardened(self, cursor: duckdb.DuckDBPyConnection, root: duckdb.DuckDBPyConnection) -> None:
        """Layer 5: refuse an instance that was not opened hardened. Checked once per opening
        of the file (the configuration is locked, so it cannot change while it stays open)."""
        if root is self._hardened_root:
            return
        row = cursor.execute(_SETTINGS_SQL).fetchone()
        assert row is not None
        problems = hardening_problems(dict(zip(REQUIRED_SETTINGS, row, strict=True)))
        if problems:
            raise DatabaseUnavailableError(
                "the read-only SQL tool is off: the database was not opened with its hardening ("
                + "; ".join(problems)
                + "); open it with mcp_state.sql.hardened_database"
            )
        with self._catalog_lock:
            # Reread: another process may have migrated the file meanwhile; and with the
            # catalog go the verdicts checked against it.
            self._catalog = None
            self._verdicts.clear()
        self._hardened_root = root

    def _check(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
        """Layers 2 and 3 for ``sql``; returns the one statement's text.

        A statement's verdict depends only on its text and the catalog (the parser and the
        parse tree are DuckDB's, the walk is a pure function), so an accepted text is kept
        until the catalog is reread; refusals are not kept.
        """
        with self._catalog_lock:
            text = self._verdicts.get(sql)
            if text is not None:
                self._verdicts.move_to_end(sql)
                return text
        text = check_statement(cursor, sql)
        try:
            row = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        except duckdb.Error as exc:
            raise self._translate(exc) from None
        catalog = self._load_catalog(cursor)
        check_tree(row[0] if row else "", catalog)
        with self._catalog_lock:
            if self._catalog is catalog:
                self._verdicts[sql] = text
                while len(self._verdicts) > VERDICTS_KEPT:
                    self._verdicts.popitem(last=False)
        return text

    def _load_catalog(self, cursor: duckdb.DuckDBPyConnection) -> Catalog:
        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = Catalog.load(cursor)
            return self._catalog

    def _check_limit(self, limit: int) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.max_limit:
            raise InvalidArgumentError(
                f"limit must be a whole number from 1 to {self.max_limit:,}; got {limit!r}"
            )
        return limit

    def _cap(self, rows: list[list[Any]]) -> tuple[list[list[Any]], bool]:
        """The leading rows whose JSON fits in ``max_output_chars``, and whether any were left out."""
        if len(json.dumps(rows, ensure_ascii=False)) <= self.max_output_chars:
            return rows, False
        size = 0
        for index, row in enumerate(rows):
            size += len(json.dumps(row, ensure_ascii=False)) + 1
            if size > self.max_output_chars:
                return rows[:index], True
        return rows, False

    def _translate(self, exc: duckdb.Error) -> StateError:
        if isinstance(exc, duckdb.InterruptException):
            return QueryTimeoutError(
                f"the query ran longer than the {self.timeout:g} s time limit and was stopped; narrow it: "
                "filter with WHERE, aggregate, or read fewer rows"
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return InvalidSQLError(
                "the query needs more memory than the SQL tool allows; aggregate, filter with WHERE or "
                "select fewer columns"
            )
        if isinstance(exc, duckdb.PermissionException):
            return InvalidSQLError(
                "the query tried to reach a file or setting, which the SQL tool does not allow"
            )
        return InvalidSQLError(f"the query failed: {self._scrub(_message(exc))}")

    def _scrub(self, message: str) -> str:
        """``message`` without the paths of this server's files."""
        for path in _private_paths(self.db.path):
            message = message.replace(path, "<path>")
        return message


class Watchdog:
    """One thread that calls ``interrupt()`` on each watched cursor whose time is up.

    (A timer thread per query costs more than the guards: starting one waits for the switch.)
    """

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, duckdb.DuckDBPyConnection]] = {}
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> int:
        """Interrupt ``cursor`` in ``seconds`` unless released first; returns the token to release."""
        with self._wake:
            token = next(self._ids)
            self._due[token] = (time.monotonic() + seconds, cursor)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mcp-state-sql-watchdog", daemon=True)
                self._thread.start()
            self._wake.notify()
            return token

    def release(self, token: int) -> bool:
        """Stop watching; False when the time had run out (the cursor was interrupted)."""
        with self._wake:
            return self._due.pop(token, None) is not None

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                for token, (deadline, cursor) in list(self._due.items()):
                    if deadline <= now:
                        del self._due[token]
                        cursor.interrupt()
                soonest = min((deadline for deadline, _ in self._due.values()), default=None)
                self._wake.wait(None if soonest is None else max(0.0, soonest - now))


@contextmanager
def open_engine(path: str | os.PathLike[str] | None = None, **engine_options: Any) -> Iterator[SqlEngine]:
    """An engine over the existing database at ``path`` (default: ``system_db_path()``), closed after.

    For one-shot callers such as the CLI: a missing file is an error, never created.
    """
    target = str(path) if path else str(system_db_path())
    if target != ":memory:" and not Path(target).is_file():
        raise DatabaseUnavailableError(
            f"no database at {target}; point to an existing state database with --db PATH or DATA_DIR"
        )
    db = hardened_database(target, idle_release=None)
    try:
        yield SqlEngine(db, **engine_options)
    finally:
        db.close()


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier: ``audit_log`` -> ``"audit_log"``."""
    return '"' + name.replace('"', '""') + '"'


def _describe(table: str, column: str) -> str:
    return COLUMN_DESCRIPTIONS.get(table, {}).get(column) or REDACTED_FLAG_COLUMNS.get(table, {}).get(
        column, ""
    )


def _message(exc: BaseException) -> str:
    """DuckDB's message up to its ``LINE n:`` excerpt, on one line, at most 600 characters."""
    lines = []
    for line in str(exc).strip().splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    text = " ".join(lines)
    return text if len(text) <= 600 else text[:599] + "…"


def _private_paths(db_path: str) -> list[str]:
    paths = set()
    if db_path != ":memory:":
        resolved = Path(db_path).resolve()
        paths.update({str(resolved.parent), str(Path(db_path).parent), db_path})
    data_dir = os.environ.get("DATA_DIR")
    if data_dir:
        paths.update({data_dir, str(Path(data_dir).resolve())})
    paths.add(str(Path.home()))
    # Longest first, so a path is replaced before a prefix of it.
    return sorted((p for p in paths if p not in ("", ".", "/")), key=len, reverse=True)


# DuckDB types whose Python values are already JSON-safe as they come.
_PLAIN_TYPES = frozenset(
    {"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER", '"NULL"'}
)


def _as_is(value: Any) -> Any:
    return value


def converter(type_name: str) -> Callable[[Any], Any]:
    """The ``json_safe`` conversion for values of one column type (the identity where it can be)."""
    if type_name in _PLAIN_TYPES:
        return _as_is
    return partial(json_safe, type_name=type_name)


def json_safe(value: Any, type_name: str | None = None) -> Any:
    """``value`` as JSON can carry it without loss.

    Timestamps ISO 8601 in UTC (``Z``); decimals as exact strings; integers beyond 2^53 as
    strings; NaN and infinities as strings; UUIDs as strings; blobs base64; intervals as ISO
    8601 durations; lists, structs and maps as JSON arrays and objects; JSON columns parsed.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if type_name == "JSON":
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def iso_duration(value: timedelta) -> str:
    """``timedelta(days=3, seconds=90)`` -> ``P3DT1M30S``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    days, rest = divmod(abs(micros), 86_400_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or micro:
        clock += f"{seconds}.{micro:06d}".rstrip("0").rstrip(".") + "S"
    if not days and not clock:
        return "PT0S"
    return f"{sign}P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
