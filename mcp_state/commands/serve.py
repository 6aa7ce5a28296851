"""``mcp-state serve``: run the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from typing import Any

from mcp_state.sharing import DB_HELP

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
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the database (empty) if the file does not exist (a PostgreSQL database gets its schema anyway)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="open the file read-only and register only the tools that do not change state",
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
    parser.add_argument(
        "--host", type=_host, default="127.0.0.1", help="HTTP: address to bind (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=_port, default=8765, help="HTTP: port, 1 to 65535 (default: 8765)")
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


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _host(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if re.fullmatch(r"[0-9.]+", text) or not _HOST_NAME.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be an IP address or a host name, got {text!r}") from None
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1 to 65535, got {value}")
    return value


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
    _database_for(settings.db_path, create=args.create)
    mcp = build_server(settings)
    if settings.transport == "http":
        from mcp_state.server.http import check_can_bind, serve_http

        active = check_can_bind(settings)
        _check_port_free(settings.host, settings.port)  # before the banner says it listens
        _say(http_banner(settings, active, len(anyio.run(mcp.list_tools))))
        anyio.run(serve_http, mcp, settings)
    else:
        # One line always (a client's log shows which file is served); how to connect on a terminal.
        first, _, rest = stdio_banner(settings, len(anyio.run(mcp.list_tools)), args).partition("\n")
        _say(first + (f"\n{rest}" if sys.stdin.isatty() else ""))
        return anyio.run(_serve_stdio, mcp)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be bound (in use, or not this machine's)."""
    import socket

    from mcp_state.errors import StateError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StateError(
            f"cannot listen on {host}: {exc.strerror}; pass --host with an address of this machine"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise StateError(
                f"cannot listen on {host}:{port}: {exc.strerror}; stop what uses it or pass another --port"
            ) from None


# Seconds between Ctrl-C and the end of the process, at most.
CTRL_C_GRACE = 0.5


async def _serve_stdio(mcp: Any) -> int:
    """Serve over stdio until stdin closes (0) or Ctrl-C (130), which ends it at once and quietly.

    Ctrl-C cancels the server, which then shuts down normally when it can. The SDK reads stdin on
    a worker thread blocked in ``readline``, which no cancellation wakes, so the process ends
    ``CTRL_C_GRACE`` seconds later whatever it waits for. Every acknowledged write is already
    durable, as after ``kill -9``. (A KeyboardInterrupt raised from a signal handler instead
    lands wherever the event loop happens to be, and asyncio then prints its traceback.)
    """
    import os
    import signal
    import threading

    import anyio

    stopped = False

    async def stop_on_ctrl_c(scope: anyio.CancelScope) -> None:
        nonlocal stopped
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                stopped = True
                sys.stderr.flush()
                ender = threading.Timer(CTRL_C_GRACE, os._exit, args=(130,))
                ender.daemon = True
                ender.start()
                scope.cancel()
                return

    async with anyio.create_task_group() as group:
        if threading.current_thread() is threading.main_thread():  # signals reach only that one
            group.start_soon(stop_on_ctrl_c, group.cancel_scope)
        await mcp.run_stdio_async()
        group.cancel_scope.cancel()
    return 130 if stopped else 0


def _database_for(path: str, *, create: bool) -> None:
    """Refuse a missing database file, or with ``--create`` make an empty one. A PostgreSQL
    database is reached now (and given the schema), so a wrong URL fails before the banner."""
    from pathlib import Path

    from mcp_state.db import Database, connect
    from mcp_state.dialect import is_postgres_url
    from mcp_state.sharing import require_database

    if is_postgres_url(path):
        with Database(path, idle_release=None):
            return
    if create and not Path(path).exists():
        connect(path).close()
    require_database(path)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _what(settings: Any, tools: int) -> str:
    from mcp_state.sharing import shown_location

    toolsets = ", ".join(settings.toolsets) if settings.toolsets else "all toolsets"
    mode = ", read-only" if settings.read_only else ""
    return f"{shown_location(settings.db_path)} ({tools} tools: {toolsets}{mode})"


def stdio_banner(settings: Any, tools: int, args: argparse.Namespace) -> str:
    from mcp_state import __version__
    from mcp_state.launch import client_snippets, password_note, serve_command

    options = []
    if args.read_only:
        options.append("--read-only")
    if args.toolsets:
        options += ["--toolsets", args.toolsets]
    if args.actor:
        options += ["--actor", args.actor]
    command = serve_command(settings.db_path, *options)
    return "\n".join(
        [
            f"mcp-state {__version__}: serving {_what(settings, tools)} over stdio as actor '{settings.actor}'.",
            "This is an MCP server: it talks JSON-RPC on stdin/stdout, so typing here does nothing.",
            "Connect a client instead:",
            *client_snippets(command),
            *password_note(settings.db_path),
            "Press Ctrl-C to stop.",
        ]
    )


def http_banner(settings: Any, active_tokens: int, tools: int) -> str:
    from mcp_state import __version__
    from mcp_state.launch import INSPECTOR
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
        f"  MCP Inspector: npx -y {INSPECTOR} --cli {url} --transport http "
        "--header 'Authorization: Bearer <token>' --method tools/list\n"
        "Press Ctrl-C to stop."
    )
