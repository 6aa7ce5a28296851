"""Read-only SQL exploration of the state: a gate, a hardened database, an engine, MCP tools.

- ``hardening``: the DuckDB configuration and ``on_open`` hook of a database the SQL tool may query.
- ``guard``: what a statement may be and contain, checked on DuckDB's own parse tree.
- ``engine``: ``SqlEngine`` runs checked statements in worker processes (``pool``, ``worker``,
  ``runner``) on copies of the redacted views (``snapshot``), time-, memory- and size-bounded.
- ``results``: what both engines return (row messages, the character cap, the schema answer).
- On PostgreSQL (``sql_engine_for`` picks by the database's location): ``pg_engine``
  (``PgSqlEngine``: a read-only transaction as ``pg_role``'s reader role, limits set per
  transaction), ``pg_guard`` (the gate, on ``pglast``'s parse tree) and ``pg_functions``.
- ``render``: markdown of the results; ``tools``: the MCP tools (imports the MCP SDK).
"""

from mcp_state.sql.engine import SqlEngine
from mcp_state.sql.hardening import harden, hardened_config, hardened_database

__all__ = ["SqlEngine", "harden", "hardened_config", "hardened_database"]
