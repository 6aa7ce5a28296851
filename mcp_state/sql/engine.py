"""The read-only SQL engine: ``SqlEngine`` runs checked statements in a worker process.

The server never runs an analyst's statement itself. Each call goes to a worker process
(``pool``) that holds an in-memory copy of the redacted views only (``snapshot``), locked
down before any data reaches it (``runner``); there the statement passes the gate
(``guard``: one read-only statement, allow-listed functions, tables resolved per scope) and
runs in a read-only transaction, interrupted at the time limit. The worker's address space
is capped at its idle size plus ``memory_ceiling`` bytes, and a worker that has not answered
by the time limit plus half a second is killed and replaced: no statement, not even one that
explodes while DuckDB plans it, can grow the server, keep a core busy, or read a file.

    engine = SqlEngine(hardened_database(path))
    engine.query("SELECT action, count(*) FROM audit_log GROUP BY ALL", limit=10)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

import duckdb

from mcp_state.db import Database, system_db_path
from mcp_state.dialect import is_postgres_url
from mcp_state.errors import DatabaseUnavailableError, InvalidArgumentError, InvalidSQLError
from mcp_state.sql.guard import MAX_SQL_CHARS, check_size
from mcp_state.sql.hardening import hardened_database
from mcp_state.sql.pool import WorkerPool, default_workers
from mcp_state.sql.results import DEFAULT_LIMIT, DEFAULT_TIMEOUT, MAX_LIMIT, MAX_OUTPUT_CHARS, check_limit
from mcp_state.sql.runner import message_of
from mcp_state.sql.snapshot import Snapshot
from mcp_state.sql.types import SqlExplainResult, SqlQueryResult, SqlSchemaResult

# What a statement may add to the worker's address space, and DuckDB's own limit inside it.
DEFAULT_MEMORY_CEILING = 1536 * 2**20
DEFAULT_MEMORY_LIMIT = "1GB"
WORKER_THREADS = 2


class ReadOnlySql(Protocol):
    """What the SQL tools and commands call: ``SqlEngine`` (DuckDB) or ``PgSqlEngine`` (PostgreSQL)."""

    timeout: float

    def query(self, sql: str, limit: int = DEFAULT_LIMIT) -> SqlQueryResult: ...

    def explain(self, sql: str) -> SqlExplainResult: ...

    def schema(self, table: str | None = None) -> SqlSchemaResult: ...

    def close(self) -> None: ...


def sql_engine_for(db: Database, **engine_options: Any) -> ReadOnlySql:
    """The read-only SQL engine of ``db``: DuckDB's worker sandbox over copies of the redacted
    views, or on PostgreSQL a reader role in read-only transactions (``pg_engine``)."""
    url = getattr(db, "url", None)  # the location decides the engine
    if isinstance(url, str) and is_postgres_url(url):
        from mcp_state.sql.pg_engine import PgSqlEngine

        return PgSqlEngine(url, **engine_options)
    return SqlEngine(db, **engine_options)


class SqlEngine:
    """Read-only SQL over the redacted views of one ``Database``; safe to share between threads."""

    def __init__(
        self,
        db: Database,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_limit: int = MAX_LIMIT,
        max_output_chars: int = MAX_OUTPUT_CHARS,
        max_sql_chars: int = MAX_SQL_CHARS,
        memory_ceiling: int = DEFAULT_MEMORY_CEILING,
        workers: int | None = None,
    ) -> None:
        if timeout <= 0:
            raise InvalidArgumentError(f"the SQL time limit must be positive; got {timeout}")
        self.db = db
        self.timeout = float(timeout)
        self.max_limit = max_limit
        self.max_output_chars = max_output_chars
        self.max_sql_chars = max_sql_chars
        self.memory_ceiling = memory_ceiling
        self.snapshot = Snapshot(db)
        self.pool = WorkerPool(
            {
                "timeout": self.timeout,
                "memory_ceiling": memory_ceiling,
                "memory_limit": DEFAULT_MEMORY_LIMIT,
                "threads": WORKER_THREADS,
            },
            workers or default_workers(),
        )

    def query(self, sql: str, limit: int = DEFAULT_LIMIT) -> SqlQueryResult:
        """Run one read-only statement; at most ``limit`` rows, ``truncated`` when more exist."""
        started = time.perf_counter()
        limit = check_limit(limit, self.max_limit)
        check_size(sql, self.max_sql_chars)
        reads = self._precheck(sql)
        result = self._run(
            {
                "op": "query",
                "sql": sql,
                "limit": limit,
                "max_output_chars": self.max_output_chars,
                "max_limit": self.max_limit,
            },
            reads,
        )
        result["elapsed_ms"] = _elapsed_ms(started)
        return cast(SqlQueryResult, result)

    def explain(self, sql: str) -> SqlExplainResult:
        """DuckDB's plan of one read-only statement; the statement itself is not run."""
        started = time.perf_counter()
        check_size(sql, self.max_sql_chars)
        result = self._run({"op": "explain", "sql": sql}, self._precheck(sql))
        result["elapsed_ms"] = _elapsed_ms(started)
        return cast(SqlExplainResult, result)

    def schema(self, table: str | None = None) -> SqlSchemaResult:
        """The redacted views the SQL tool reads: columns, types and descriptions."""
        return cast(SqlSchemaResult, self._run({"op": "schema", "table": table}, frozenset()))

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        self.pool.close()

    def _precheck(self, sql: str) -> frozenset[str] | None:
        """The views ``sql`` reads (None: every view), or a refusal."""
        try:
            return self.snapshot.precheck(sql)
        except duckdb.Error as exc:
            raise InvalidSQLError(f"the statement could not be checked: {message_of(exc)}") from None

    def _run(self, request: dict[str, Any], reads: frozenset[str] | None) -> dict[str, Any]:
        result: dict[str, Any] = self.pool.run(self.snapshot, request, self.timeout, reads)
        return result


@contextmanager
def open_engine(path: str | os.PathLike[str] | None = None, **engine_options: Any) -> Iterator[ReadOnlySql]:
    """An engine over the existing database at ``path`` (default: ``system_db_path()``; a
    ``postgresql://`` URL names a PostgreSQL database), closed after.

    For one-shot callers such as the CLI: a missing file is an error, never created.
    """
    target = str(path) if path else str(system_db_path())
    if not is_postgres_url(target) and target != ":memory:" and not Path(target).is_file():
        raise DatabaseUnavailableError(
            f"no database at {target}; point to an existing state database with --db PATH or DATA_DIR"
        )
    db = hardened_database(target, idle_release=None)
    engine = sql_engine_for(db, **engine_options)
    try:
        yield engine
    finally:
        engine.close()
        db.close()


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
