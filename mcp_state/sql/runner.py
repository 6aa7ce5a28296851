"""What runs inside the SQL worker process: the gate, then the statement, on a copy of the data.

``Runner`` holds an in-memory DuckDB instance with one schema, ``redacted``, whose tables are
copies of the redacted views (``load``). No database file, WAL or other path is reachable
from it: it has no file, external access is off and the configuration is locked before the
first table is loaded. Each statement passes the guard (``guard``), runs in a read-only
transaction that is always rolled back, is interrupted at the time limit, and returns at most
``limit`` rows (``truncated`` exact) capped at ``max_output_chars`` characters of JSON.

Every phase of a call (catalog load, gate, run, fetch, conversion) goes through the same
translation into ``StateError``s; the worker sends the error's kind and message back.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import duckdb

from mcp_state.errors import InvalidSQLError, QueryTimeoutError, StateError
from mcp_state.gateway import column_names, quote_identifier
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.convert import converter
from mcp_state.sql.guard import (
    TABLE_FUNCTIONS,
    Catalog,
    check_statement,
    check_tree,
    statement_kind,
)
from mcp_state.sql.hardening import NO_EXTENSIONS_OR_SECRETS
from mcp_state.sql.pivot import rewrite_pivot
from mcp_state.sql.results import cap_rows, row_messages, schema_result

# The SQL dialect statements are written in (sql_schema says it; PostgreSQL's engine has its own).
DIALECT = "DuckDB"

# Accepted statements whose verdict is kept (per loaded snapshot), most recently used first.
VERDICTS_KEPT = 512

# Tables of the SQL tool that are not views of the database (``snapshot`` fills them): name ->
# (the view whose columns and column descriptions it has, its description).
ARCHIVE = "audit_archive"
SQL_ONLY_TABLES: dict[str, tuple[str, str]] = {
    ARCHIVE: (
        "audit_log",
        "Audit rows moved out of audit_log by `mcp-state audit archive` (its Parquet files), same columns.",
    ),
    "audit_all": ("audit_log", "Every audit row, live (audit_log) or archived (audit_archive)."),
}


def connect(memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """The worker's in-memory instance, locked before any data or statement reaches it."""
    conn = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": "",  # nothing spills to disk
            **NO_EXTENSIONS_OR_SECRETS,
        },
    )
    # The default database, "memory", again but compressed (as a file's tables are once
    # checkpointed): filters and GROUP BYs over the copies then run as fast as over the file.
    for statement in (
        "ATTACH ':memory:' AS swap",
        "USE swap",
        "DETACH memory",
        "ATTACH ':memory:' AS memory (COMPRESS)",
        "USE memory",
        "DETACH swap",
    ):
        conn.execute(statement)
    conn.execute(f"CREATE SCHEMA {quote_identifier(REDACTED_SCHEMA)}")
    conn.execute(f"SET search_path = '{REDACTED_SCHEMA}'")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


class Runner:
    """Runs the SQL tool's operations on one in-memory instance (one call at a time)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.columns: dict[str, list[tuple[str, str]]] = {}
        self._views: set[str] = set()  # the copies that are views over others (``union``)
        self._catalog: Catalog | None = None
        self._verdicts: OrderedDict[str, str] = OrderedDict()
        self._watchdog = Watchdog(conn.interrupt)
        self._compressed = True  # every copy is checkpointed (compressed) since the last load

    # -- the snapshot ----------------------------------------------------------------
    def load(self, table: str, columns: list[list[str]], parts: list[str], replace: bool) -> None:
        """Add rows to the copy of ``table``: ``parts`` has one JSON array per column, of the
        column's values as text (``["1", null]``), all of one length. ``replace`` starts the copy
        afresh with these ``columns`` (``[[name, type], ...]``)."""
        if replace or table not in self.columns:
            self.drop(table)
            typed = [(str(c), str(t)) for c, t in columns]
            struct = ", ".join(f"{quote_identifier(c)} {t}" for c, t in typed)
            self.conn.execute(f"CREATE TABLE {_table(table)} ({struct})")
            self.columns[table] = typed
        typed = self.columns[table]
        if len(parts) != len(typed):
            raise ValueError(f"{len(parts)} columns sent for {table}, which has {len(typed)}")
        if any(part != "[]" for part in parts):
            picks = ", ".join(
                f"CAST(unnest(CAST(${i}::JSON AS VARCHAR[])) AS {t})" for i, (_, t) in enumerate(typed, 1)
            )
            self.conn.execute(f"INSERT INTO {_table(table)} SELECT {picks}", parts)
        self._changed()

    def union(self, table: str, of: list[str], key: str) -> None:
        """``table`` as a view over the copies ``of`` (their rows one after the other, by column
        name), each row once: a later copy adds only the rows whose ``key`` the first lacks."""
        self.drop(table)
        first, *rest = of
        body = " UNION ALL BY NAME ".join(
            [f"SELECT * FROM {_table(first)}"]
            + [
                f"SELECT * FROM (SELECT r.* FROM {_table(name)} AS r ANTI JOIN {_table(first)} "
                f"USING ({quote_identifier(key)}))"
                for name in rest
            ]
        )
        self.conn.execute(f"CREATE VIEW {_table(table)} AS {body}")
        self.columns[table] = list(self.columns[of[0]])
        self._views.add(table)
        self._changed()

    def _changed(self) -> None:
        self._catalog = None
        self._verdicts.clear()
        self._compressed = False

    def drop(self, table: str) -> None:
        kind = "VIEW" if table in self._views else "TABLE"
        self.conn.execute(f"DROP {kind} IF EXISTS {_table(table)}")
        self.columns.pop(table, None)
        self._views.discard(table)
        self._changed()

    # -- the three operations ---------------------------------------------------------
    def query(self, sql: str, limit: int, max_output_chars: int, max_limit: int) -> dict[str, Any]:
        with self._session() as cursor:
            text = self._check(cursor, sql)
            description, raw = self._fetch(cursor, text, limit)
        more = len(raw) > limit
        types = [str(col[1]) for col in description]
        convert = [converter(t) for t in types]
        rows = [[c(v) for c, v in zip(convert, row, strict=True)] for row in raw[:limit]]
        rows, capped = cap_rows(rows, max_output_chars)
        result: dict[str, Any] = {
            "columns": [
                {"name": name, "type": type_}
                for name, type_ in zip(column_names(description), types, strict=True)
            ],
            "rows": rows,
            "row_count": len(rows),
            "truncated": more or capped,
            "limit": limit,
        }
        message = row_messages(more, capped, limit, len(rows), max_output_chars, max_limit)
        if message:
            result["message"] = message
        return result

    def explain(self, sql: str) -> dict[str, Any]:
        with self._session() as cursor:
            text = self._check(cursor, sql)
            explain_sql = f"EXPLAIN {text.strip()}\n"
            statements = cursor.extract_statements(explain_sql)
            if len(statements) != 1 or statement_kind(statements[0]) != "EXPLAIN":
                raise InvalidSQLError("the statement could not be explained; send one SELECT")
            plan_rows = cursor.execute(explain_sql).fetchall()
        return {"plan": "\n".join(str(row[-1]).rstrip() for row in plan_rows)}

    def schema(self, table: str | None) -> dict[str, Any]:
        return schema_result(DIALECT, self.columns, table, TABLE_FUNCTIONS, SQL_ONLY_TABLES)

    # -- one call: cursor, read-only transaction, time limit, translation --------------
    @contextmanager
    def _session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self.conn  # one call at a time: the connection whose search path is set
        try:
            if not self._compressed:  # once after the loads of a sync, before the first statement
                cursor.execute("CHECKPOINT")
                self._compressed = True
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            self._watchdog.arm(self.timeout)
            yield cursor
        except duckdb.Error as exc:
            raise self.translate(exc) from None
        except RecursionError:
            raise InvalidSQLError("the statement is nested too deeply to check; simplify it") from None
        finally:
            self._watchdog.disarm()
            with suppress(duckdb.Error):
                cursor.execute("ROLLBACK")

    def _check(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
        """The gate (layers 2 and 3); an accepted text is kept until the next snapshot load."""
        text = self._verdicts.get(sql)
        if text is not None:
            self._verdicts.move_to_end(sql)
            return text
        statements = cursor.extract_statements(sql) if sql.lstrip()[:5].upper() == "PIVOT" else []
        if len(statements) == 1 and statement_kind(statements[0]) == "MULTI":
            text = self._gate(
                cursor, rewrite_pivot(sql, lambda q: cursor.execute(self._gate(cursor, q)).fetchall())
            )
        else:
            text = self._gate(cursor, sql)
        self._verdicts[sql] = text
        while len(self._verdicts) > VERDICTS_KEPT:
            self._verdicts.popitem(last=False)
        return text

    def _gate(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
        text = check_statement(cursor, sql)
        row = cursor.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
        if self._catalog is None:
            self._catalog = Catalog.load(cursor)
        check_tree(row[0] if row else "", self._catalog)
        return text

    def _fetch(self, cursor: duckdb.DuckDBPyConnection, text: str, limit: int) -> tuple[list[Any], list[Any]]:
        """The description and up to ``limit + 1`` rows; values Python cannot hold come back as text."""
        cursor.execute(text)
        description = list(cursor.description or [])
        try:
            return description, cursor.fetchmany(limit + 1)
        except (duckdb.ConversionException, duckdb.InvalidInputException, OverflowError, ValueError):
            # Say INTERVAL 2147483647 MONTH (beyond a Python timedelta): the same rows, as text.
            cursor.execute(f"SELECT COLUMNS(*)::VARCHAR FROM ({text})")
            rows = cursor.fetchmany(limit + 1)
            return [(d[0], "VARCHAR", *d[2:]) for d in description], rows

    def translate(self, exc: duckdb.Error) -> StateError:
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
        return InvalidSQLError(f"the query failed: {message_of(exc)}")


class Watchdog:
    """One thread, started with the runner (before the address space is capped, so it never
    needs memory later), that calls ``interrupt`` when an armed deadline passes."""

    def __init__(self, interrupt: Any) -> None:
        self._interrupt = interrupt
        self._deadline: float | None = None
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="mcp-state-sql-watchdog", daemon=True).start()

    def arm(self, seconds: float) -> None:
        with self._wake:
            self._deadline = time.monotonic() + seconds
            self._wake.notify()

    def disarm(self) -> None:
        with self._wake:
            self._deadline = None

    def _run(self) -> None:
        with self._wake:
            while True:
                if self._deadline is None:
                    self._wake.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self._deadline = None
                    self._interrupt()
                    continue
                self._wake.wait(left)


def _table(name: str) -> str:
    return f"{quote_identifier(REDACTED_SCHEMA)}.{quote_identifier(name)}"


def message_of(exc: BaseException) -> str:
    """DuckDB's message up to its ``LINE n:`` excerpt, on one line, at most 600 characters."""
    lines = []
    for line in str(exc).strip().splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    text = " ".join(lines)
    return text if len(text) <= 600 else text[:599] + "…"
