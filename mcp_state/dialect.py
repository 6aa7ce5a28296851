"""The one home of what differs between the two engines: DuckDB and PostgreSQL.

Repositories, the gateway and the tools write one SQL text and ask the dialect of their
connection (``dialect_of``) for the parts that differ: placeholders (everyone writes ``?``;
PostgreSQL's cursor adapter turns them into ``%s``), error translation, transient errors
to retry, upserts, column lists that DuckDB writes as ``* EXCLUDE``, JSON and regular
expression functions, and how a transaction begins and announces its writes. Nothing else
tests which engine it runs on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property, lru_cache
from typing import Any

from mcp_state import schema_pg
from mcp_state.errors import ConflictError, DatabaseUnavailableError, SchemaError, TransientConflictError
from mcp_state.knowledge_index import WORDS_OF
from mcp_state.schema import COLUMN_DESCRIPTIONS, Migration

# A commit that cannot reach the disk surfaces as a TransactionException with the OS error in its text.
_IO_FAILURE = re.compile(
    r"No space left on device|Could not write file|Read-only file system|Permission denied"
)
# The channel PostgreSQL transactions announce the tables they wrote on (``Dialect.commit``): the
# payload is "<origin>|<table>,<table>..." (the writer's ``Database.origin``), "*" for any table.
CHANNEL = "mcp_state_changes"
ALL_TABLES = "*"
MIGRATION_LOCK = 0x6D63705F7374  # the advisory lock of schema migrations on PostgreSQL ("mcp_st")


def is_postgres_url(location: object) -> bool:
    """Whether a database location names a PostgreSQL server (else it is a DuckDB path)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def constraint_message(message: str) -> str:
    lowered = message.lower()
    if "duplicate key" in lowered or "unique" in lowered or "primary key" in lowered:
        return "a row with that key already exists; use a different id (or update the existing row)"
    if "not null" in lowered:
        return "a required value is missing"
    return "the change breaks a rule of the schema and was not applied"


def unsaved(reason: str, fix: str = "Free space or fix the file's permissions") -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"the change was not saved: {reason}; nothing was changed and earlier data is intact. {fix}, then retry."
    )


class Dialect:
    """DuckDB's SQL; ``PostgresDialect`` overrides what PostgreSQL writes differently."""

    name = "duckdb"
    title = "DuckDB"  # as documents name the engine (state://schema)
    # DuckDB: BEGIN travels in front of a transaction's first statement (one call fewer).
    begin_with_statement = True
    # DuckDB aborts concurrent updates of one row instead of waiting: a process lock queues writers.
    process_write_lock = True
    # An ``INSERT ... ON CONFLICT DO UPDATE`` (else: an UPDATE, then an INSERT if it matched nothing).
    native_upsert = False
    # A lone write statement runs without BEGIN/COMMIT (it commits alone, durably); else it gets a
    # transaction of its own, where its writes are announced (``commit``).
    lone_writes = True
    # Transient errors (``TransientConflictError``) can happen: a unit of work is retried on them.
    transient_errors = False
    # Begins a read of several statements that all see one moment (``transfer``: a whole-state copy).
    begin_snapshot = "BEGIN TRANSACTION"
    # (table_name, column_name) of every column of the state's tables (``consistency``: verify).
    catalog_columns = (
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main'"
    )
    # The last number a sequence (the one ``?``: its name) gave out, 0 if none yet.
    sequence_last_value = "SELECT coalesce(last_value, 0) FROM duckdb_sequences() WHERE sequence_name = ?"

    @cached_property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions the engine's driver raises."""
        import duckdb

        return (duckdb.Error,)

    def to_native(self, sql: str) -> str:
        """``sql`` with ``?`` placeholders in the driver's own style."""
        return sql

    def translate(self, exc: BaseException) -> BaseException:
        """The domain error for a driver error, or ``exc`` itself when it has none."""
        import duckdb

        message = str(exc)
        if isinstance(exc, duckdb.ConstraintException):
            return ConflictError(constraint_message(message))
        if isinstance(exc, duckdb.IOException) or _IO_FAILURE.search(message):
            return unsaved(
                "the disk is full" if "No space left" in message else "the file could not be written"
            )
        return exc

    def rows_changed(self, result: Any) -> int:
        """The number of rows a write statement changed (DuckDB answers it as a ``Count`` row)."""
        description = result.description
        if description and len(description) == 1 and str(description[0][0]).lower() == "count":
            row = result.fetchone()
            return int(row[0]) if row else 0
        return 0

    def commit(self, tables: frozenset[str] | set[str] | None, origin: str = "") -> str:
        """The statement that commits a transaction that wrote ``tables`` (None: unknown ones),
        telling other processes which (``origin``: the writer, so that it can skip its own)."""
        return "COMMIT"

    def migration_text(self, migration: Migration) -> str:
        return migration.sql

    def schema_version(self, conn: Any) -> int:
        """The newest migration applied on ``conn``'s database, 0 without a schema."""
        import duckdb

        try:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except duckdb.CatalogException:
            return 0
        return int(row[0]) if row and row[0] else 0

    def lock_schema(self, conn: Any) -> bool:
        """Inside a migration's transaction: wait until no other process is migrating; True when
        another may have migrated meanwhile (DuckDB: no other process can have the file open)."""
        return False

    # -- SQL text --------------------------------------------------------------------------
    def columns_except(self, table: str, excluded: Sequence[str]) -> str:
        """The select list of every column of ``table`` but ``excluded``."""
        return f"* EXCLUDE ({', '.join(excluded)})" if excluded else "*"

    def double(self, expr: str, digits: int | None = None) -> str:
        """``expr`` as a double, rounded to ``digits`` decimals when given."""
        rounded = expr if digits is None else f"round({expr}, {digits})"
        return f"CAST({rounded} AS DOUBLE)"

    def arg_max(self, value: str, key: str, where: str | None = None) -> str:
        """The ``value`` of the row with the greatest ``key`` (among those matching ``where``)."""
        return f"arg_max({value}, {key})" + (f" FILTER (WHERE {where})" if where else "")

    def any_value(self, expr: str) -> str:
        return f"any_value({expr})"

    def json_list_has(self, column: str) -> str:
        """A condition: the JSON list in ``column`` holds the one ``?`` parameter (case-insensitively)."""
        return f"list_contains(from_json(lower(CAST({column} AS VARCHAR)), '[\"VARCHAR\"]'), lower(?))"

    def json_length(self, column: str, path: str) -> str:
        """How many entries the array or object at ``path`` (``$.name``) of ``column`` holds (0 if neither)."""
        return (
            f"CASE json_type({column}, '{path}') WHEN 'ARRAY' THEN json_array_length({column}, '{path}') "
            f"WHEN 'OBJECT' THEN len(json_keys({column}, '{path}')) ELSE 0 END"
        )

    def words(self, expr: str) -> str:
        """The list of words (runs of letters and digits) of ``expr``, lower-cased."""
        return rf"regexp_extract_all(lower({expr}), '[\pL\pN]+')"

    def knowledge_words_of(self, where: str) -> str:
        """The statement that fills the knowledge word index for the items ``where`` selects."""
        return WORDS_OF.format(where=where)

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        keep: Sequence[str],
        insert_only: Sequence[str],
    ) -> str:
        """One statement inserting a row or updating the one with its key, returning it (``native_upsert``)."""
        sets = [c for c in columns if c not in key and c not in insert_only]
        assignments = (
            ", ".join(
                f"{c} = coalesce(EXCLUDED.{c}, {table}.{c})" if c in keep else f"{c} = EXCLUDED.{c}"
                for c in sets
            )
            or f"{key[0]} = EXCLUDED.{key[0]}"
        )  # no column to change: a no-op update still returns the row
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments} RETURNING *"
        )


class PostgresDialect(Dialect):
    name = "postgresql"
    title = "PostgreSQL"
    begin_with_statement = False
    process_write_lock = False  # PostgreSQL makes concurrent writers wait on row locks
    native_upsert = True  # exact under concurrency: two upserts of one new key never both insert
    lone_writes = False
    transient_errors = True  # deadlocks; serialization failures above READ COMMITTED
    begin_snapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    catalog_columns = (
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    )
    sequence_last_value = (
        "SELECT coalesce(last_value, 0) FROM pg_sequences "
        "WHERE schemaname = current_schema() AND sequencename = ?"
    )

    @cached_property
    def errors(self) -> tuple[type[BaseException], ...]:
        import psycopg
        import psycopg_pool

        return (psycopg.Error, psycopg_pool.PoolTimeout)

    def to_native(self, sql: str) -> str:
        return _percent_style(sql)

    def translate(self, exc: BaseException) -> BaseException:
        import psycopg_pool

        state = getattr(exc, "sqlstate", None) or ""
        if state in ("40001", "40P01"):
            kind = "a deadlock" if state == "40P01" else "a serialization failure"
            return TransientConflictError(
                f"the change collided with concurrent changes ({kind}) and was rolled back "
                "after several tries; nothing was changed: retry"
            )
        if state.startswith("23"):
            return ConflictError(constraint_message(str(exc)))
        if state in ("53100", "53200"):
            return unsaved("the database server is out of disk space or memory", "Free space on the server")
        if state == "25006":
            return DatabaseUnavailableError("the database is open read-only: the change was not saved")
        if isinstance(exc, psycopg_pool.PoolTimeout) or state.startswith(("08", "57P")):
            return DatabaseUnavailableError(
                "the PostgreSQL server cannot be reached (or no connection came free in time); "
                "nothing was changed: check that the server is up, then retry"
            )
        return exc

    def rows_changed(self, result: Any) -> int:
        return max(0, int(result.rowcount))

    def commit(self, tables: frozenset[str] | set[str] | None, origin: str = "") -> str:
        if tables is not None and not tables:
            return "COMMIT"
        payload = origin + "|" + (ALL_TABLES if tables is None else ",".join(sorted(tables)))
        literal = "'" + payload.replace("'", "''") + "'"
        return f"SELECT pg_notify('{CHANNEL}', {literal}); COMMIT"  # one round trip for both

    def migration_text(self, migration: Migration) -> str:
        if migration.postgres is None:
            raise SchemaError(
                f"schema migration {migration.version} ({migration.name}) has no PostgreSQL text in this "
                "mcp-state; use a DuckDB file, or an mcp-state release that has it"
            )
        return migration.postgres

    def lock_schema(self, conn: Any) -> bool:
        conn.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
        return True

    def schema_version(self, conn: Any) -> int:
        # A failed statement would abort the migration's transaction: look the table up first, in
        # the catalog as of now (to_regclass's cache may predate another opener's commit).
        found = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_tables "
            "WHERE tablename = 'schema_version' AND schemaname = current_schema()"
        ).fetchone()
        return super().schema_version(conn) if found and found[0] else 0

    def columns_except(self, table: str, excluded: Sequence[str]) -> str:
        if not excluded:
            return "*"
        return ", ".join(c for c in COLUMN_DESCRIPTIONS[table] if c not in excluded)

    def double(self, expr: str, digits: int | None = None) -> str:
        rounded = expr if digits is None else f"round(CAST({expr} AS NUMERIC), {digits})"
        return f"CAST({rounded} AS DOUBLE PRECISION)"

    def arg_max(self, value: str, key: str, where: str | None = None) -> str:
        return (
            f"(array_agg({value} ORDER BY {key} DESC)"
            + (f" FILTER (WHERE {where})" if where else "")
            + ")[1]"
        )

    def any_value(self, expr: str) -> str:
        return f"min({expr})"

    def json_list_has(self, column: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE jsonb_typeof({column}) "
            f"WHEN 'array' THEN {column} END) AS e(v) WHERE lower(e.v) = lower(?))"
        )

    def json_length(self, column: str, path: str) -> str:
        node = f"({column} -> '{path.removeprefix('$.')}')"
        return (
            f"CASE jsonb_typeof({node}) WHEN 'array' THEN jsonb_array_length({node}) "
            f"WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys({node}))::INTEGER ELSE 0 END"
        )

    def words(self, expr: str) -> str:
        return f"ARRAY(SELECT m[1] FROM regexp_matches(lower({expr}), '{schema_pg.WORD}', 'g') AS m)"

    def knowledge_words_of(self, where: str) -> str:
        return schema_pg.WORDS_OF.format(where=where)


DUCKDB = Dialect()
POSTGRES = PostgresDialect()


def dialect_of(source: object) -> Dialect:
    """The dialect of a connection, cursor or ``Database`` (a DuckDB connection has none: DuckDB)."""
    found = getattr(source, "dialect", None)
    return found if isinstance(found, Dialect) else DUCKDB


@lru_cache(maxsize=4096)  # the repositories' statements are a fixed set of texts
def _percent_style(sql: str) -> str:
    """``?`` -> ``%s`` (outside string literals, quoted names and comments) and ``%`` -> ``%%``."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # a doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
            continue
        if sql.startswith(("--", "/*"), i):
            line = sql.startswith("--", i)
            end = sql.find("\n" if line else "*/", i + 2)
            end = n if end < 0 else end + (0 if line else 2)
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
        i += 1
    return "".join(out)
