"""The read-only SQL engine on PostgreSQL: ``PgSqlEngine``, with ``SqlEngine``'s interface.

Each call takes one of the engine's own connections (a small ``psycopg_pool`` pool, never the
one the other tools use) and, the engine's defences first:

1. ``BEGIN READ ONLY``; ``SET LOCAL`` ``statement_timeout``, ``lock_timeout``,
   ``idle_in_transaction_session_timeout``, ``work_mem``, ``temp_file_limit`` and a fixed
   ``search_path`` (``redacted, pg_catalog, pg_temp``); then ``SET LOCAL ROLE`` to the reader
   (``pg_role``), which may only read the redacted views and cannot set ``temp_file_limit``
   or call ``set_config`` to undo any of it;
2. the gate (``pg_guard``: ``pglast``'s parse tree, so refusals say why);
3. the statement as a server-side cursor (``DECLARE ... CURSOR FOR``), which PostgreSQL accepts
   for one query only: no second statement, no ``SELECT ... INTO``, no data-modifying ``WITH``;
   ``limit + 1`` rows are fetched (``truncated`` exact, the rest never produced);
4. ``ROLLBACK``, always. A call still running at the time limit plus ``KILL_GRACE`` is
   cancelled from the client too.

Rows come back JSON-safe (``convert.json_safe``) and capped like DuckDB's (``runner.cap_rows``).

    engine = PgSqlEngine("postgresql://app@db/state")
    engine.query("SELECT action, count(*) FROM audit_log GROUP BY action", limit=10)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from mcp_state import postgres
from mcp_state.errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    InvalidSQLError,
    QueryTimeoutError,
    StateError,
)
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.convert import json_safe
from mcp_state.sql.guard import MAX_SQL_CHARS
from mcp_state.sql.pg_functions import PG_TABLE_FUNCTIONS
from mcp_state.sql.pg_guard import check_pg_statement, check_text
from mcp_state.sql.pg_role import ensure_reader
from mcp_state.sql.results import (
    DEFAULT_LIMIT,
    DEFAULT_TIMEOUT,
    MAX_LIMIT,
    MAX_OUTPUT_CHARS,
    cap_rows,
    check_limit,
    row_messages,
    schema_result,
)
from mcp_state.sql.types import SqlExplainResult, SqlQueryResult, SqlSchemaResult

DIALECT = "PostgreSQL 15"
DEFAULT_WORK_MEM = "64MB"
DEFAULT_TEMP_FILE_LIMIT = "1GB"
KILL_GRACE = 0.5
POOL_SIZE = 2

_VIEWS_SQL = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = %s AND c.relkind = 'v' ORDER BY c.relname, a.attnum"
)


class PgSqlEngine:
    """Read-only SQL over the redacted views of one PostgreSQL database; thread-safe."""

    dialect = DIALECT

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_limit: int = MAX_LIMIT,
        max_output_chars: int = MAX_OUTPUT_CHARS,
        max_sql_chars: int = MAX_SQL_CHARS,
        work_mem: str = DEFAULT_WORK_MEM,
        temp_file_limit: str = DEFAULT_TEMP_FILE_LIMIT,
        pool_size: int = POOL_SIZE,
        guard: bool = True,
    ) -> None:
        if timeout <= 0:
            raise InvalidArgumentError(f"the SQL time limit must be positive; got {timeout}")
        self.timeout = float(timeout)
        self.max_limit = max_limit
        self.max_output_chars = max_output_chars
        # What PostgreSQL may send of one result (its rows' binary size), before the character cap.
        self.result_bytes = 4 * max_output_chars
        self.max_sql_chars = max_sql_chars
        self.work_mem = work_mem
        self.temp_file_limit = temp_file_limit
        self._guard = guard  # False only in tests that show what the engine refuses by itself
        self._url = url
        self.pool_size = max(1, pool_size)
        self._pool: ConnectionPool | None = None  # opened by the first call
        self._lock = threading.Lock()
        self._deadlines = Deadlines()
        self._reader: str | None = None
        self._columns: dict[str, list[tuple[str, str]]] | None = None

    # -- the three operations ----------------------------------------------------------
    def query(self, text: str, limit: int = DEFAULT_LIMIT) -> SqlQueryResult:
        """Run one read-only statement; at most ``limit`` rows, ``truncated`` when more exist."""
        started = time.perf_counter()
        limit = check_limit(limit, self.max_limit)
        checked = self._check(text)
        with self._session() as conn:
            probe, cursor = conn.cursor(name="mcp_state_sql_probe"), conn.cursor(name="mcp_state_sql")
            try:
                probe.execute(checked)  # DECLARE: planned and described, not run; its columns
                description = list(probe.description or [])
                cursor.execute(self._within_budget(checked, len(description)))
                raw = cursor.fetchmany(limit + 1)
            finally:
                _finish(conn)  # the ROLLBACK closes the cursors: close() then costs no round trip
                probe.close()
                cursor.close()
        over_budget = False
        if description:  # each row ends with "fits"; the first that does not came without values
            kept = next((i for i, row in enumerate(raw) if not row[-1]), len(raw))
            over_budget = kept < len(raw)
            raw = [row[:-1] for row in raw[:kept]]
        more = len(raw) > limit
        rows = [[json_safe(v) for v in row] for row in raw[:limit]]
        rows, capped = cap_rows(rows, self.max_output_chars)
        capped = capped or (over_budget and len(rows) < limit)
        result: dict[str, Any] = {
            "columns": [{"name": c.name, "type": c.type_display} for c in description],
            "rows": rows,
            "row_count": len(rows),
            "truncated": more or capped,
            "limit": limit,
        }
        message = row_messages(more, capped, limit, len(rows), self.max_output_chars, self.max_limit)
        if message:
            result["message"] = message
        result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result  # type: ignore[return-value]

    def _within_budget(self, statement: str, columns: int) -> sql.SQL | sql.Composed:
        """``statement`` wrapped so that PostgreSQL sends no more than about ``result_bytes``: each
        row carries ``fits`` (the rows so far, this one included, within the budget), and a row
        that does not fit comes with NULLs in place of its values. A 1 GB ``repeat()`` never
        leaves the database server; the character cap then trims what came (``cap_rows``)."""
        if columns == 0:
            return sql.SQL(statement)
        names = [sql.Identifier(f"c{i}") for i in range(columns)]
        return sql.SQL(
            "SELECT {picks}, w.fits FROM (SELECT q.*, sum(pg_catalog.pg_column_size(q.*)) OVER "
            "(ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) <= {budget} AS fits "
            "FROM (\n{statement}\n) AS q ({names})) AS w"
        ).format(
            picks=sql.SQL(", ").join(sql.SQL("CASE WHEN w.fits THEN w.{} END").format(n) for n in names),
            budget=sql.Literal(self.result_bytes),
            statement=sql.SQL(statement),
            names=sql.SQL(", ").join(names),
        )

    def explain(self, text: str) -> SqlExplainResult:
        """PostgreSQL's plan of one read-only statement (never ``EXPLAIN ANALYZE``)."""
        started = time.perf_counter()
        checked = self._check(text)
        with self._session() as conn:
            # prepare=True: the extended protocol, which takes one statement only.
            plan = conn.execute(f"EXPLAIN {checked.strip()}\n", prepare=True).fetchall()
        return {
            "plan": "\n".join(str(row[0]) for row in plan),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    def schema(self, table: str | None = None) -> SqlSchemaResult:
        """The redacted views the SQL tool reads: columns, types and descriptions."""
        return cast(
            SqlSchemaResult, schema_result(DIALECT, self._views(refresh=True), table, PG_TABLE_FUNCTIONS)
        )

    def close(self) -> None:
        """Close the engine's connections (a later call opens new ones)."""
        with self._lock:
            self._deadlines.stop()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- the parts ---------------------------------------------------------------------
    def _check(self, text: str) -> str:
        if not self._guard:
            check_text(text)
            return text
        views = frozenset(self._views())
        try:
            return check_pg_statement(text, views, self.max_sql_chars)
        except InvalidSQLError:
            fresh = frozenset(self._views(refresh=True))
            if fresh == views:
                raise
            return check_pg_statement(text, fresh, self.max_sql_chars)

    def _views(self, refresh: bool = False) -> dict[str, list[tuple[str, str]]]:
        """The redacted views and their columns, as the reader sees them."""
        if self._columns is not None and not refresh:
            return self._columns
        columns: dict[str, list[tuple[str, str]]] = {}
        with self._session() as conn:
            for view, column, type_ in conn.execute(_VIEWS_SQL, [REDACTED_SCHEMA]).fetchall():
                columns.setdefault(str(view), []).append((str(column), str(type_)))
        self._columns = columns
        return columns

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """One read-only transaction as the reader, limits set, cancelled at the deadline, rolled back."""
        pool, reader = self._ensure_open()
        try:
            with pool.connection(timeout=self.timeout) as conn:
                try:
                    conn.execute(self._begin(reader))  # one round trip (the simple protocol)
                    self._deadlines.arm(conn, self.timeout + KILL_GRACE)
                    yield conn
                finally:
                    self._deadlines.disarm(conn)
                    _finish(conn)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):
                self._reader = None  # set the role up again on the next call (a view may be new)
            raise self._translate(exc) from None

    def _begin(self, reader: str) -> sql.Composed:
        """``BEGIN READ ONLY``, the limits, the search path, then the reader role (last: it may set nothing)."""
        parts: list[sql.Composable] = [sql.SQL("BEGIN TRANSACTION READ ONLY")]
        parts += [
            sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(value))
            for name, value in self._limits()
        ]
        parts.append(
            sql.SQL("SET LOCAL search_path = {}, pg_catalog, pg_temp").format(sql.Identifier(REDACTED_SCHEMA))
        )
        parts.append(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(reader)))
        return sql.SQL("; ").join(parts)

    def _limits(self) -> list[tuple[str, str]]:
        ms = f"{int(self.timeout * 1000)}ms"
        return [
            ("statement_timeout", ms),
            ("lock_timeout", ms),
            ("idle_in_transaction_session_timeout", f"{int((self.timeout + 5) * 1000)}ms"),
            ("work_mem", self.work_mem),
            ("temp_file_limit", self.temp_file_limit),
            # One backend per statement: no parallel workers multiplying its CPU and memory.
            ("max_parallel_workers_per_gather", "0"),
        ]

    def _ensure_open(self) -> tuple[ConnectionPool, str]:
        """The pool (opened on the first call) and the reader role (set up on the first call)."""
        with self._lock:
            try:
                if self._pool is None:
                    postgres.connect(self._url).close()  # an unreachable server: one line saying so
                    self._pool = ConnectionPool(
                        self._url,
                        min_size=0,
                        max_size=self.pool_size,
                        open=False,
                        kwargs={"autocommit": True, "application_name": "mcp-state-sql"},
                        configure=_configure,
                        name="mcp-state-sql",
                    )
                    self._pool.open(wait=False)
                if self._reader is None:
                    with self._pool.connection(timeout=self.timeout) as conn:
                        self._reader = ensure_reader(conn)
            except psycopg.Error as exc:
                raise self._translate(exc) from None
            return self._pool, self._reader

    def _translate(self, exc: psycopg.Error) -> StateError:
        if isinstance(exc, PoolTimeout):
            postgres.connect(self._url).close()  # the server gone: say that, not "busy"
            return DatabaseUnavailableError(
                f"the SQL tool is busy: {self.pool_size} queries are running; retry in a few seconds"
            )
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return QueryTimeoutError(
                f"the query ran longer than the {self.timeout:g} s time limit and was stopped; narrow it: "
                "filter with WHERE, aggregate, or read fewer rows"
            )
        if isinstance(exc, psycopg.errors.ConfigurationLimitExceeded):  # temp_file_limit
            return InvalidSQLError(
                "the query needs more temporary disk space than the SQL tool allows; aggregate, filter with "
                "WHERE or select fewer columns"
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return InvalidSQLError(
                f"the query was refused by PostgreSQL: {_first_line(exc)}. The SQL tool reads the redacted views "
                "only (see sql_schema)"
            )
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and exc.sqlstate is None:
            return postgres.unreachable(self._url, exc)  # the connection lost: said as when connecting
        if isinstance(exc, psycopg.errors.OutOfMemory):
            return InvalidSQLError(
                "the query needs more memory than the SQL tool allows; aggregate, filter with WHERE or "
                "select fewer columns"
            )
        return InvalidSQLError(f"the query failed: {_first_line(exc)}")


class Deadlines:
    """One thread that cancels a connection's running statement when its armed deadline passes
    (started with the first call; cheaper than a timer thread per call)."""

    def __init__(self) -> None:
        self._due: dict[psycopg.Connection[Any], float] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        with self._wake:
            self._due[conn] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mcp-state-sql-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def disarm(self, conn: psycopg.Connection[Any]) -> None:
        with self._wake:
            self._due.pop(conn, None)

    def stop(self) -> None:
        """End the thread (a later ``arm`` starts a new one)."""
        with self._wake:
            self._due.clear()
            self._thread, thread = None, self._thread
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout=2.0)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._wake:
                if self._thread is not me:
                    return
                now = time.monotonic()
                late = [conn for conn, at in self._due.items() if at <= now]
                for conn in late:
                    del self._due[conn]
                if not late:
                    self._wake.wait(min(self._due.values()) - now if self._due else None)
                    continue
            for conn in late:  # outside the lock: a cancel is a round trip to the server
                with suppress(psycopg.Error):
                    conn.cancel_safe(timeout=1.0)


def _finish(conn: psycopg.Connection[Any]) -> None:
    """End a call's transaction (if still open) and drop any session-level advisory lock a
    statement took, in one round trip (no parameters: the simple protocol)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK; SELECT pg_advisory_unlock_all()")


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TimeZone = 'UTC'")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 600 else text[:599] + "…"
