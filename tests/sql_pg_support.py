"""Shared by the tests/test_sql_pg_*.py modules: a seeded PostgreSQL database (the canary
secrets of ``sql_support``), an MCP server whose SQL toolset runs on it, a content dump."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import psycopg
from mcp.server.mcpserver import MCPServer
from pg_support import admin_url, with_database
from sql_support import CANARIES

from mcp_state.server.tools_sql import register_sql_tools
from mcp_state.sql.pg_engine import PgSqlEngine
from mcp_state.sql.pg_role import reader_name

__all__ = ["CANARIES", "dump_pg", "make_pg_server", "seeded_pg_database"]

_counter = itertools.count()

# Until the PostgreSQL schema of mcp_state.schema lands: the tables the attacks aim at, with
# their secrets, and their redacted views, as migration 3 makes them.
_SCHEMA = """
CREATE SEQUENCE audit_log_seq;
CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL, name text, role text DEFAULT 'analyst',
    password_hash text, setup_token text, reset_token text, created_at timestamp DEFAULT now());
CREATE TABLE pending_codes (code text PRIMARY KEY, chat_id bigint NOT NULL, created_at timestamp);
CREATE TABLE api_tokens (id text PRIMARY KEY, actor text, scope text, token_hash text, created_at timestamp,
    revoked_at timestamp);
CREATE TABLE audit_log (id text PRIMARY KEY, timestamp timestamp NOT NULL DEFAULT now(), user_id text,
    action text NOT NULL, resource text, params jsonb, result text, duration_ms integer,
    seq bigint NOT NULL DEFAULT nextval('audit_log_seq'));
CREATE SCHEMA redacted;
CREATE VIEW redacted.users AS SELECT id, email, name, role, created_at, password_hash IS NOT NULL AS has_password,
    setup_token IS NOT NULL AS has_setup_token, reset_token IS NOT NULL AS has_reset_token FROM users;
CREATE VIEW redacted.pending_codes AS SELECT chat_id, created_at FROM pending_codes;
CREATE VIEW redacted.api_tokens AS SELECT id, actor, scope, created_at, revoked_at FROM api_tokens;
CREATE VIEW redacted.audit_log AS SELECT * FROM audit_log;
CREATE FUNCTION public.peek() RETURNS text LANGUAGE sql AS $$SELECT string_agg(password_hash, ',') FROM users$$;
"""

_SEED = """
INSERT INTO users (id, email, name, role, password_hash, setup_token, reset_token, created_at) VALUES
 ('u1', 'ana@example.com', 'Ana', 'admin', 'CANARY-pw-ana-7f3a', NULL, 'CANARY-reset-ana-91c2', '2026-03-01 09:00:00'),
 ('u2', 'bo@example.com', 'Bo', 'analyst', 'CANARY-pw-bo-c0de', 'CANARY-setup-bo-55aa', NULL, '2026-03-02 09:00:00'),
 ('u3', 'cy@example.com', 'Cy', 'viewer', NULL, 'CANARY-setup-cy-e1e1', NULL, '2026-03-03 09:00:00'),
 ('u4', 'di@example.com', 'Di', 'analyst', 'CANARY-pw-di-b0b0', NULL, NULL, '2026-03-04 09:00:00');
INSERT INTO pending_codes VALUES ('CANARY-code-111111', 1001, '2026-03-20 10:00:00'),
 ('CANARY-code-222222', 1002, '2026-03-21 10:00:00');
INSERT INTO api_tokens VALUES ('tok1', 'ana', 'admin', 'CANARY-hash-aaaa', '2026-03-01 00:00:00', NULL),
 ('tok2', 'bo', 'read', 'CANARY-hash-bbbb', '2026-03-02 00:00:00', '2026-03-10 00:00:00');
INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms) VALUES
 ('a01', '2026-03-20 09:00:00', 'u1', 'approve_knowledge', 'k1', '{"item": "k1"}', 'ok', 12),
 ('a02', '2026-03-20 09:05:00', 'u1', 'approve_knowledge', 'k2', '{"item": "k2"}', 'ok', 10),
 ('a03', '2026-03-20 10:00:00', 'u2', 'vote', 'k1', '{"item": "k1", "vote": 1}', 'ok', 5),
 ('a04', '2026-03-21 11:00:00', 'u2', 'approve_knowledge', 'k3', '{"item": "k3"}', 'error', 7),
 ('a05', '2026-03-21 11:30:00', 'u3', 'vote', 'k1', '{"item": "k1", "vote": 1}', 'ok', 4);
"""


@contextmanager
def seeded_pg_database(label: str) -> Iterator[str]:
    """A fresh database with the state schema and the canary seed; its URL; dropped after."""
    admin = admin_url()
    name = f"mcp_sql_{label}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_SCHEMA)
            conn.execute(_SEED)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{reader_name(name)}"')


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
            "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles WHERE rolname LIKE 'mcp_state_sql_%' ORDER BY 1",
        ):
            parts.append(repr(conn.execute(query).fetchall()))
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
