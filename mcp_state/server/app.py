"""The server factory: ``build_server(settings)`` returns a ready ``MCPServer``.

Nothing is global: each call builds a server with its own lifespan (which opens the
database for the first connection and closes it after the last), its tools (by toolset,
only the reads with ``read_only``), resources and prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import (
    CallToolResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
)
from mcp_types import Tool as MCPTool
from pydantic import ValidationError

from mcp_state import __version__
from mcp_state.errors import InvalidArgumentError
from mcp_state.server import authz, prompts, resources
from mcp_state.server.audit import ToolSpec, audit_rejected, caller_of
from mcp_state.server.errors import invalid_arguments, tool_error
from mcp_state.server.live import Live
from mcp_state.server.results import DEFAULT_MAX_RESULT_CHARS, bound_result
from mcp_state.server.shapes import compact_schema
from mcp_state.server.state import AppState, Runtime, ServerSettings
from mcp_state.server.tools_audit import audit
from mcp_state.server.tools_knowledge import knowledge
from mcp_state.server.tools_notifications import notifications
from mcp_state.server.tools_registry import registry
from mcp_state.server.tools_scripts import scripts
from mcp_state.server.tools_sql import register_sql_tools
from mcp_state.server.tools_sync import sync
from mcp_state.server.tools_users import users
from mcp_state.server.untrusted import INSTRUCTION

RegisterToolset = Callable[[MCPServer[Any], ServerSettings], None]


def register_sql(mcp: MCPServer[Any], settings: ServerSettings) -> None:
    """The read-only SQL toolset (sql_query, sql_schema, sql_explain) on the server's own engine."""
    register_sql_tools(mcp, lambda ctx: cast(AppState, ctx.request_context.lifespan_context).sql)


# Every toolset by name. Adding one is one entry: a function that registers its tools.
TOOLSETS: dict[str, RegisterToolset] = {
    "sync": sync.register,
    "users": users.register,
    "knowledge": knowledge.register,
    "audit": audit.register,
    "notifications": notifications.register,
    "scripts": scripts.register,
    "registry": registry.register,
    "sql": register_sql,
}

INSTRUCTIONS = (
    """\
mcp-state holds an application's operational state: data-table syncs, users and dataset \
permissions, a knowledge base with votes, the audit log, Telegram links, scripts and the table registry.
Read with get_*/list_*/search_* tools (lists are paged: while has_more is true, call again with \
cursor=next_cursor; results are cut to a character budget and say so with truncated); change state with the other tools. Every change is audited with you as the actor.
Resources: state://schema (every table and column, for SQL), state://sync (all tables' sync status), \
state://sync/{table_id}, state://sync/{table_id}/history, state://knowledge/{item_id}, \
state://users/{user_id}, state://tables/{table_id}, state://audit/recent.
For questions the tools do not answer, sql_query runs one read-only DuckDB SELECT over redacted \
views of every table (sql_schema lists them).
Errors say what to do next. Passwords, tokens and one-time codes are never shown.
"""
    + INSTRUCTION
)


class StateServer(MCPServer[AppState]):
    """``MCPServer`` that audits, and words without echoing values, calls rejected by the input schema."""

    def __init__(self, *args: Any, max_result_chars: int = DEFAULT_MAX_RESULT_CHARS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audited_tools: dict[str, ToolSpec] = {}
        self.live: Live | None = None
        self.max_result_chars = max_result_chars

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """Only the tools the caller's scope may call (a hidden one called anyway is refused and audited)."""
        context: Context[Any, Any] = Context(request_context=cast(Any, ctx), mcp_server=self)
        caller = caller_of(context, ctx.lifespan_context.settings)
        hidden = authz.hidden(self.audited_tools.values(), caller.scope)
        return ListToolsResult(tools=[tool for tool in await self.list_tools() if tool.name not in hidden])

    async def list_tools(self) -> list[MCPTool]:
        """The tools with compacted schemas (same validation, fewer bytes of an agent's context)."""
        return [
            tool.model_copy(
                update={
                    "input_schema": closed(compact_schema(tool.input_schema)),
                    "output_schema": None
                    if tool.output_schema is None
                    else compact_schema(tool.output_schema),
                }
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            refuse_unknown_arguments(self._tool_manager.get_tool(name), arguments or {})
            result = await super().call_tool(name, arguments, context)
            return bound_result(result, self.max_result_chars, name)
        except InvalidArgumentError as exc:
            spec = self.audited_tools.get(name)
            if spec is not None and context is not None:
                await audit_rejected(spec, context, arguments)
            raise tool_error(name, exc) from None
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            spec = self.audited_tools.get(name)
            if spec is not None and context is not None:
                await audit_rejected(spec, context, arguments)
            raise invalid_arguments(name, cause) from None


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema that says what ``refuse_unknown_arguments`` does: no other properties."""
    return {**schema, "additionalProperties": False}


def refuse_unknown_arguments(tool: Tool | None, arguments: Mapping[str, Any]) -> None:
    """``InvalidArgumentError`` naming each argument ``tool`` does not have, and listing those it has."""
    if tool is None:
        return
    known = tool.parameters.get("properties", {})
    unknown = [name for name in arguments if name not in known]
    if unknown:
        raise InvalidArgumentError(
            f"{tool.name} has no argument {', '.join(repr(n) for n in unknown)}; "
            f"its arguments are: {', '.join(known) or 'none'}"
        )


def selected_toolsets(
    settings: ServerSettings, available: Mapping[str, RegisterToolset] = TOOLSETS
) -> list[str]:
    if settings.toolsets is None:
        return list(available)
    unknown = [name for name in settings.toolsets if name not in available]
    if unknown:
        raise InvalidArgumentError(
            f"unknown toolset {', '.join(unknown)}; choose from {', '.join(available)}"
        )
    return list(dict.fromkeys(settings.toolsets))


def build_server(settings: ServerSettings | None = None) -> StateServer:
    """A new server for ``settings`` (environment defaults filled in now)."""
    settings = (settings or ServerSettings()).resolved()
    runtime = Runtime(settings)
    auth_kwargs: dict[str, Any] = {}
    if settings.transport == "http":
        from mcp_state.server.http import auth_options

        auth_kwargs = auth_options(settings, runtime)
    live = Live()
    mcp = StateServer(
        "mcp-state",
        title="mcp-state",
        description="An application's operational state in DuckDB: syncs, users, knowledge, audit and more.",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=runtime.lifespan,
        log_level=settings.log_level,
        subscriptions=live.bus,
        max_result_chars=settings.max_result_chars or DEFAULT_MAX_RESULT_CHARS,
        **auth_kwargs,
    )
    mcp.live = live
    live.install(mcp)
    for name in selected_toolsets(settings):
        TOOLSETS[name](mcp, settings)
    resources.register(mcp, runtime)
    prompts.register(mcp, runtime)
    if settings.transport == "http":
        from mcp_state.server.http import add_routes

        add_routes(mcp)
    return mcp
