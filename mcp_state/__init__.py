"""mcp-state: an application's operational state in one DuckDB database, served over MCP."""

__version__ = "0.1.0"
