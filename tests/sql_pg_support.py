"""Shared by the tests/test_sql_pg_*.py modules: a PostgreSQL database with the state schema and
the seed of ``sql_support`` (its canary secrets), an MCP server whose SQL toolset runs on it, a
content dump."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import psycopg
from mcp.server.mcpserver import MCPServer
from pg_support import throwaway_database
from sql_support import CANARIES, seed

from mcp_state.db import Database
from mcp_state.server.tools_sql import register_sql_tools
from mcp_state.sql.pg_engine import PgSqlEngine
from mcp_state.sql.pg_role import reader_name

__all__ = ["CANARIES", "dump_pg", "make_pg_server", "seeded_pg_database"]


# A function someone with write access created, reading a secret column: the reader role calls
# it with its own rights (SECURITY INVOKER), so PostgreSQL refuses it the table.
_PEEK = "CREATE FUNCTION public.peek() RETURNS text LANGUAGE sql AS $$SELECT string_agg(password_hash, ',') FROM users$$"


@contextmanager
def seeded_pg_database(label: str) -> Iterator[str]:
    """A fresh database with the state schema and the canary seed; its URL; dropped after."""
    with throwaway_database(f"mcp_sql_{label}") as url:
        with Database(url) as db:  # the migrations, then the canary rows
            seed(db)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_PEEK)
        yield url


def dump_pg(url: str) -> str:
    """Every table's rows, the schemas, views, functions and sequences of ``url``'s database."""
    parts: list[str] = []
    with psycopg.connect(url) as conn:
        for query in (
            "SELECT nspname FROM pg_namespace ORDER BY 1",
            "SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2",
            "SELECT n.nspname, p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
        ):
            parts.append(repr(conn.execute(query).fetchall()))
        database = conn.execute("SELECT current_database()").fetchone()[0]
        parts.append(  # this database's reader role (other tests' come and go meanwhile)
            repr(
                conn.execute(
                    "SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", [reader_name(database)]
                ).fetchall()
            )
        )
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema') ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1').fetchall()
            parts.append(f"{schema}.{table}: {rows!r}")
    return "\n".join(parts)


@dataclass
class PgSqlState:
    engine: PgSqlEngine


def make_pg_server(url: str, *, timeout: float = 5.0) -> MCPServer:
    """A minimal MCP server with the SQL toolset over the PostgreSQL database at ``url``."""

    @asynccontextmanager
    async def lifespan(app: MCPServer):
        engine = PgSqlEngine(url, timeout=timeout)
        try:
            yield PgSqlState(engine=engine)
        finally:
            engine.close()

    mcp = MCPServer("sql-pg-test", lifespan=lifespan)
    register_sql_tools(mcp, lambda ctx: ctx.request_context.lifespan_context.engine)
    return mcp
