"""The reader role of the read-only SQL tool on PostgreSQL: what the engine enforces first.

Each database gets a ``NOLOGIN`` role (``reader_name``: ``mcp_state_sql_<database>``) that may
do one thing: ``SELECT`` the views of schema ``redacted`` (migration 3). It owns nothing,
belongs to no role, and is not a superuser, so PostgreSQL itself refuses it the base tables
(``users.password_hash`` and the other secrets), ``pg_read_file``, ``pg_ls_dir``, server-side
``lo_import``/``lo_export``, ``COPY ... TO PROGRAM``, the settings only ``pg_read_all_settings``
may read, and the query texts of other roles in ``pg_stat_activity``. The SQL engine runs each
statement under ``SET LOCAL ROLE`` to it.

One door stays open to any role under ``SET ROLE``: ``set_config('role', ...)`` switches back
to the login role in the middle of a statement (PostgreSQL checks the *session* user's
membership), and ``query_to_xml`` would then run SQL text with the login role's rights. So the
setup also revokes ``EXECUTE`` on ``set_config`` from ``PUBLIC`` (granting it back to the login
role), and the engine's ``SET LOCAL temp_file_limit`` needs the right to set that parameter.

``ensure_reader(conn)`` creates or refreshes all of it lazily (the first SQL call of a process),
under an advisory lock so concurrent servers do not race, and then verifies the result. What the
login role may not do itself (create roles, revoke ``set_config``, grant the parameter) ends in
one ``DatabaseUnavailableError`` line naming the statements an admin must run once
(``admin_statements``); docs/postgres-sql.md shows them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import psycopg
from psycopg import sql

from mcp_state.errors import DatabaseUnavailableError
from mcp_state.gateway import quote_identifier
from mcp_state.schema import REDACTED_SCHEMA

ROLE_PREFIX = "mcp_state_sql_"
SET_CONFIG = "pg_catalog.set_config(text, text, boolean)"
# Serializes the setup between processes (a fixed key: "mcp_state_sql_role").
_LOCK_KEY = 0x6D63_7073_716C


def reader_name(database: str) -> str:
    """The reader role's name for ``database``: lower-case letters, digits and ``_``, at most 63
    characters (a hash of the name keeps long or unusual names apart)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", database.lower())
    name = ROLE_PREFIX + cleaned
    if len(name) > 63 or cleaned != database:
        digest = hashlib.sha256(database.encode("utf-8")).hexdigest()[:8]
        name = f"{ROLE_PREFIX}{cleaned[: 63 - len(ROLE_PREFIX) - 9]}_{digest}"
    return name


def admin_statements(reader: str, login: str) -> list[str]:
    """What an admin (a superuser) runs once in the database when the login role may not."""
    r, who = quote_identifier(reader), quote_identifier(login)
    return [
        f"CREATE ROLE {r} NOLOGIN",
        f"GRANT {r} TO {who}",
        f"GRANT USAGE ON SCHEMA {REDACTED_SCHEMA} TO {r}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {REDACTED_SCHEMA} TO {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {who} IN SCHEMA {REDACTED_SCHEMA} GRANT SELECT ON TABLES TO {r}",
        f"REVOKE EXECUTE ON FUNCTION {SET_CONFIG} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO {who}",
        f"GRANT SET ON PARAMETER temp_file_limit TO {who}",
    ]


def ensure_reader(conn: psycopg.Connection[Any]) -> str:
    """Create or refresh the reader role of ``conn``'s database, verify it, return its name.

    ``conn`` is the server's login connection, idle (no transaction open); it is left idle."""
    database, login, schema = conn.execute(
        "SELECT current_database(), current_user, to_regnamespace(%s) IS NOT NULL", [REDACTED_SCHEMA]
    ).fetchone() or ("", "", False)
    if not schema:
        raise DatabaseUnavailableError(
            f"database {database} has no mcp-state schema (schema {REDACTED_SCHEMA} is missing); open it once "
            "with `mcp-state serve --create --db URL` or `mcp-state migrate`, then query it"
        )
    reader = reader_name(str(database))
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            _setup(conn, reader, str(login))
    except psycopg.errors.InsufficientPrivilege:
        pass  # verified below: the message names what is missing and what an admin runs
    problems = reader_problems(conn, reader)
    if problems:
        raise DatabaseUnavailableError(
            f"the read-only SQL tool cannot run on this PostgreSQL database: {'; '.join(problems)}. "
            f"An admin must run once, in database {database}: {'; '.join(admin_statements(reader, str(login)))}"
        )
    return reader


def _setup(conn: psycopg.Connection[Any], reader: str, login: str) -> None:
    r, who = sql.Identifier(reader), sql.Identifier(login)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reader]).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(r))
    if not _fetch_bool(conn, "SELECT pg_has_role(current_user, %s, 'MEMBER')", [reader]):
        conn.execute(sql.SQL("GRANT {} TO {}").format(r, who))
    schema = sql.Identifier(REDACTED_SCHEMA)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, r))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, r))
    # A view a later migration adds (created by this login role) is the reader's at once.
    conn.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(schema, r)
    )
    if _fetch_bool(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", []):
        # PostgreSQL 15 creates schema public without CREATE for PUBLIC; an older database
        # upgraded in place may still grant it.
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        if _fetch_bool(conn, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", [reader, SET_CONFIG]):
            conn.execute(sql.SQL(f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO {{}}").format(who))
            conn.execute(f"REVOKE EXECUTE ON FUNCTION {SET_CONFIG} FROM PUBLIC")


def reader_problems(conn: psycopg.Connection[Any], reader: str) -> list[str]:
    """What keeps ``reader`` from being the confined role the engine needs (empty: nothing)."""
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls, rolreplication "
        "FROM pg_roles WHERE rolname = %s",
        [reader],
    ).fetchone()
    if row is None:
        conn.rollback()
        return [f"role {reader} does not exist and the server's role may not create it (CREATEROLE)"]
    problems = []
    if any(row):
        problems.append(
            f"role {reader} has more than NOLOGIN (superuser, createrole, login ...): recreate it"
        )
    if not _fetch_bool(conn, "SELECT pg_has_role(current_user, %s, 'MEMBER')", [reader]):
        problems.append(f"the server's role is not a member of {reader}")
    if conn.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", [reader]
    ).fetchone():
        problems.append(f"role {reader} is a member of other roles")
    readable = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname NOT IN (%s, 'pg_catalog', 'information_schema') "
        "AND has_table_privilege(%s, c.oid, 'SELECT') ORDER BY 1 LIMIT 5",
        [REDACTED_SCHEMA, reader],
    ).fetchall()
    if readable:
        problems.append(
            f"role {reader} can read tables outside {REDACTED_SCHEMA}: {', '.join(r[0] for r in readable)}"
        )
    missing = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'v' AND NOT has_table_privilege(%s, c.oid, 'SELECT') LIMIT 5",
        [REDACTED_SCHEMA, reader],
    ).fetchall()
    if missing:
        problems.append(f"role {reader} cannot read the views {', '.join(r[0] for r in missing)}")
    if _fetch_bool(conn, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", [reader, SET_CONFIG]):
        problems.append("PUBLIC may still execute set_config, which switches roles back")
    if not _fetch_bool(conn, "SELECT has_parameter_privilege(current_user, 'temp_file_limit', 'SET')", []):
        problems.append("the server's role may not set temp_file_limit")
    conn.rollback()
    return problems


def _fetch_bool(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> bool:
    row = conn.execute(query, params).fetchone()
    return bool(row and row[0])
