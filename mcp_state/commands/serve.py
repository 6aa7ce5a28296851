"""``mcp-state serve``: run the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

TOOLSET_NAMES = "sync, users, knowledge, audit, notifications, scripts, registry, sql"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the MCP server (stdio, or streamable HTTP with bearer tokens)",
        description=(
            "Serve the state database to MCP clients: a typed tool per operation, state:// resources "
            "and prompts. Over stdio (the default) a client such as Claude Desktop starts this command; "
            "over HTTP every request needs a token from `mcp-state token create`."
        ),
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="database file (default: $DATA_DIR/state/system.duckdb; DATA_DIR defaults to ./data)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="register only the tools that do not change state"
    )
    parser.add_argument(
        "--toolsets",
        metavar="A,B",
        help=f"comma-separated toolsets to expose (default: all): {TOOLSET_NAMES}",
    )
    parser.add_argument(
        "--actor",
        metavar="NAME",
        help="audit actor of stdio calls (default: $MCP_STATE_ACTOR, else your OS user)",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP: address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP: port (default: 8765)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="HTTP: also accept this Host header, e.g. a DNS name clients use (repeatable)",
    )
    parser.add_argument(
        "--max-result-chars",
        type=int,
        metavar="N",
        help="result budget: characters of text per tool result, resource or prompt "
        "(default: $MCP_STATE_MAX_RESULT_CHARS, else 20000)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Any:
    from mcp_state.server.state import ServerSettings

    toolsets = None
    if args.toolsets:
        toolsets = tuple(name.strip() for name in args.toolsets.split(",") if name.strip())
    return ServerSettings(
        db_path=args.db,
        read_only=args.read_only,
        toolsets=toolsets,
        actor=args.actor,
        transport=args.transport,
        host=args.host,
        port=args.port,
        allowed_hosts=tuple(args.allowed_host),
        max_result_chars=args.max_result_chars,
    ).resolved()


def run(args: argparse.Namespace) -> int:
    import anyio

    from mcp_state.server.app import build_server

    settings = settings_from(args)
    mcp = build_server(settings)
    if settings.transport == "http":
        from mcp_state.server.http import check_can_bind, serve_http

        active = check_can_bind(settings)
        _say(http_banner(settings, active, len(anyio.run(mcp.list_tools))))
        anyio.run(serve_http, mcp, settings)
    else:
        if sys.stdin.isatty():
            _say(stdio_banner(settings, len(anyio.run(mcp.list_tools)), args))
        anyio.run(mcp.run_stdio_async)
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _what(settings: Any, tools: int) -> str:
    from pathlib import Path

    toolsets = ", ".join(settings.toolsets) if settings.toolsets else "all toolsets"
    mode = ", read-only" if settings.read_only else ""
    return f"{Path(settings.db_path).resolve()} ({tools} tools: {toolsets}{mode})"


def stdio_banner(settings: Any, tools: int, args: argparse.Namespace) -> str:
    from pathlib import Path

    from mcp_state import __version__

    launcher = _launcher()
    serve_args = [*launcher[1:], "serve", "--db", str(Path(settings.db_path).resolve())]
    if args.read_only:
        serve_args.append("--read-only")
    if args.toolsets:
        serve_args += ["--toolsets", args.toolsets]
    command = shlex.join([launcher[0], *serve_args])
    desktop = json.dumps({"mcpServers": {"mcp-state": {"command": launcher[0], "args": serve_args}}})
    return (
        f"mcp-state {__version__}: serving {_what(settings, tools)} over stdio as actor '{settings.actor}'.\n"
        "This is an MCP server: it talks JSON-RPC on stdin/stdout, so typing here does nothing.\n"
        "Connect a client instead:\n"
        f"  Claude Code:    claude mcp add mcp-state -- {command}\n"
        f"  Claude Desktop: in claude_desktop_config.json, {desktop}\n"
        f"  MCP Inspector:  npx @modelcontextprotocol/inspector {command}\n"
        "Press Ctrl-C to stop."
    )


def _launcher() -> list[str]:
    """How this process was started, with absolute paths: clients do not share your PATH."""
    from pathlib import Path

    script = Path(sys.argv[0])
    if script.name == "mcp-state" and script.is_file():
        return [str(script.resolve())]
    return [sys.executable, "-m", "mcp_state"]


def http_banner(settings: Any, active_tokens: int, tools: int) -> str:
    from mcp_state import __version__
    from mcp_state.server.http import MCP_PATH, _url_host

    url = f"http://{_url_host(settings.host)}:{settings.port}{MCP_PATH}"
    tokens = (
        f"{active_tokens} active token(s)"
        if active_tokens
        else "no token exists yet: create one with `mcp-state token create --actor NAME --scope read`"
    )
    return (
        f"mcp-state {__version__}: serving {_what(settings, tools)} over streamable HTTP at {url} "
        f"(health check: /healthz).\n"
        f"Every request needs 'Authorization: Bearer <token>'; {tokens}.\n"
        f"  Claude Code:   claude mcp add --transport http mcp-state {url} --header 'Authorization: Bearer <token>'\n"
        f"  MCP Inspector: npx @modelcontextprotocol/inspector --cli {url} --transport http "
        "--header 'Authorization: Bearer <token>' --method tools/list\n"
        "Press Ctrl-C to stop."
    )
