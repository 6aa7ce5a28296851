"""The ``sql`` toolset: ``sql_query``, ``sql_schema`` and ``sql_explain`` on an ``MCPServer``.

Thin entry points: each tool calls one method of the engine (``SqlEngine`` on DuckDB,
``PgSqlEngine`` on PostgreSQL) and returns its typed result as
structured content, with a markdown rendering as text. Errors are translated by
``mcp_state.server.errors.tool_error`` like every other tool's (the engine's messages already
say what was refused and what is allowed instead). The tools
are synchronous, so the SDK runs them on worker threads and a long query never blocks the
server from serving other requests.

    register_sql_tools(mcp, lambda ctx: ctx.request_context.lifespan_context.sql)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from mcp_state.errors import QueryTimeoutError
from mcp_state.server.errors import tool_error
from mcp_state.server.live import live_of
from mcp_state.sql.engine import ReadOnlySql
from mcp_state.sql.render import explain_markdown, query_markdown, schema_markdown
from mcp_state.sql.results import DEFAULT_LIMIT, MAX_LIMIT
from mcp_state.sql.types import SqlExplainResult, SqlQueryResult, SqlSchemaResult

logger = logging.getLogger("mcp_state.server")

SqlText = Annotated[
    str,
    Field(
        description="One read-only SQL query (SELECT, WITH, VALUES) over the redacted views sql_schema lists, in its dialect.",
        min_length=1,
    ),
]


def _annotations(title: str) -> ToolAnnotations:
    return ToolAnnotations(
        title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )


def register_sql_tools(mcp: MCPServer, engine_for: Callable[[Context], ReadOnlySql]) -> None:
    """Add the read-only SQL tools to ``mcp``; ``engine_for(ctx)`` gives the engine of a request."""

    @mcp.tool(
        name="sql_query",
        title="Run a read-only SQL query",
        description=(
            "Answer questions the other tools cannot: one read-only SQL SELECT over the redacted state tables "
            "(dialect: see sql_schema); rows as JSON."
        ),
        annotations=_annotations("Run a read-only SQL query"),
    )
    async def sql_query(
        sql: SqlText,
        ctx: Context,
        limit: Annotated[
            int, Field(ge=1, le=MAX_LIMIT, description=f"Most rows to return (1 to {MAX_LIMIT:,}).")
        ] = DEFAULT_LIMIT,
    ) -> Annotated[CallToolResult, SqlQueryResult]:
        engine = engine_for(ctx)
        live = live_of(ctx)

        def run() -> SqlQueryResult:
            try:
                return engine.query(sql, limit)
            except QueryTimeoutError:
                logger.warning("sql_query stopped by its time limit (%g s)", engine.timeout)
                raise

        try:
            async with live.ticking(ctx, "sql_query") if live else nullcontext():
                result = await anyio.to_thread.run_sync(run)
        except Exception as exc:
            raise tool_error("sql_query", exc) from None
        return CallToolResult(
            content=[TextContent(type="text", text=query_markdown(result))], structured_content=dict(result)
        )

    @mcp.tool(
        name="sql_schema",
        title="List the tables SQL can read",
        description="Before writing SQL: the SQL dialect (DuckDB or PostgreSQL) and the tables and columns sql_query can read.",
        annotations=_annotations("List the tables SQL can read"),
    )
    def sql_schema(
        ctx: Context,
        table: Annotated[
            str | None,
            Field(description="One table name, e.g. audit_log; omit for all tables.", max_length=200),
        ] = None,
    ) -> Annotated[CallToolResult, SqlSchemaResult]:
        try:
            result = engine_for(ctx).schema(table)
        except Exception as exc:
            raise tool_error(
                "sql_schema", exc, hint="Call sql_schema without a table to list them all."
            ) from None
        return CallToolResult(
            content=[TextContent(type="text", text=schema_markdown(result))], structured_content=dict(result)
        )

    @mcp.tool(
        name="sql_explain",
        title="Explain a read-only SQL query",
        description="Show the database's plan for one read-only statement without running it, to check a slow query.",
        annotations=_annotations("Explain a read-only SQL query"),
    )
    def sql_explain(sql: SqlText, ctx: Context) -> Annotated[CallToolResult, SqlExplainResult]:
        try:
            result = engine_for(ctx).explain(sql)
        except Exception as exc:
            raise tool_error("sql_explain", exc) from None
        return CallToolResult(
            content=[TextContent(type="text", text=explain_markdown(result))], structured_content=dict(result)
        )
