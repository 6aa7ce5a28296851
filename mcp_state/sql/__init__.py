"""Read-only SQL exploration of the state: a gate, a hardened database, an engine, MCP tools.

- ``hardening``: the DuckDB configuration and ``on_open`` hook of a database the SQL tool may query.
- ``guard``: what a statement may be and contain, checked on DuckDB's own parse tree.
- ``engine``: ``SqlEngine`` runs checked statements read-only, time- and size-bounded.
- ``render``: markdown of the results; ``tools``: the MCP tools (imports the MCP SDK).
"""

from mcp_state.sql.engine import SqlEngine
from mcp_state.sql.hardening import harden, hardened_config, hardened_database

__all__ = ["SqlEngine", "harden", "hardened_config", "hardened_database"]
