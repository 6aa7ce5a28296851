"""Applying the numbered schema migrations (``schema.MIGRATIONS``), on either engine.

Each migration runs once, in its own transaction, recorded in ``schema_version``; a failed
one rolls back whole. Several processes opening one new PostgreSQL database at once take
turns (an advisory lock held by each migration's transaction; the version is read again
under it). A database newer than this code is refused.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from mcp_state import schema
from mcp_state.dialect import dialect_of
from mcp_state.errors import SchemaError
from mcp_state.schema import Migration


def get_schema_version(conn: Any) -> int:
    """The newest applied migration, or 0 when there is no schema."""
    return dialect_of(conn).schema_version(conn)


def check_schema_version(conn: Any) -> int:
    """The schema version, refused when newer than this code."""
    version = get_schema_version(conn)
    if version > schema.LATEST_VERSION:
        raise SchemaError(
            f"this database has schema version {version}, newer than this mcp-state knows "
            f"({schema.LATEST_VERSION}). Upgrade mcp-state to open it."
        )
    return version


def apply_migrations(conn: Any, target: int | None = None) -> int:
    """Apply every migration above the current version up to ``target`` (default: all), each in
    its own transaction."""
    dialect = dialect_of(conn)
    current = check_schema_version(conn)
    for migration in schema.MIGRATIONS:
        if migration.version <= current or (target is not None and migration.version > target):
            continue
        text = dialect.migration_text(migration)
        conn.execute("BEGIN TRANSACTION")
        try:
            if dialect.lock_schema(conn):  # another process may have applied it meanwhile
                current = get_schema_version(conn)
            if current < migration.version:
                conn.execute(text)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, current_timestamp)",
                    [migration.version],
                )
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(*dialect.errors):
                conn.execute("ROLLBACK")
            if isinstance(exc, dialect.errors):
                raise _failed(migration, current, exc) from exc
            raise
        current = max(current, migration.version)
    return current


def _failed(migration: Migration, current: int, exc: BaseException) -> SchemaError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else str(exc)
    return SchemaError(
        f"schema migration {migration.version} ({migration.name}) failed and was rolled back; "
        f"the database stays at version {current}: {first}"
    )
