"""The MCP server: every repository operation as a typed tool, ``state://`` resources, prompts.

``build_server(settings)`` returns a new server; ``mcp-state serve`` runs one over stdio or
streamable HTTP.
"""

from mcp_state.server.app import TOOLSETS, build_server
from mcp_state.server.state import AppState, ServerSettings, open_database

__all__ = ["TOOLSETS", "AppState", "ServerSettings", "build_server", "open_database"]
