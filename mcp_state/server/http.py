"""Streamable HTTP: bearer tokens from the database, DNS-rebinding protection, ``/healthz``.

Every ``/mcp`` request needs a token made with ``mcp-state token create``; its actor is the
audit actor and its scope (read < write < admin) limits the tools it may call. Binding to
an address other than loopback is refused while no token exists.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

import anyio.to_thread
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_state import __version__
from mcp_state.errors import DatabaseLockedError, DatabaseUnavailableError, PermissionDeniedError
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.server.state import Runtime, ServerSettings, open_database

logger = logging.getLogger("mcp_state.server")
MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SERVER_ERROR = -32000  # JSON-RPC: implementation-defined server error


class DatabaseTokenVerifier:
    """Checks bearer tokens against the hashes in ``api_tokens``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def verify_token(self, token: str) -> AccessToken | None:
        tokens = self.runtime.state.repos.tokens
        record = await anyio.to_thread.run_sync(tokens.verify, token)
        if record is None:
            logger.warning("refused a request: its bearer token is unknown or revoked")  # never the token
            return None
        return AccessToken(
            token=token, client_id=record["actor"], scopes=[record["scope"]], claims={"id": record["id"]}
        )


def auth_options(settings: ServerSettings, runtime: Runtime) -> dict[str, Any]:
    """``MCPServer`` keyword arguments that make every ``/mcp`` request need a valid token."""
    return {
        "token_verifier": DatabaseTokenVerifier(runtime),
        # No OAuth endpoints are published (no resource_server_url); the issuer is nominal.
        "auth": AuthSettings(
            issuer_url=AnyHttpUrl(f"http://{_url_host(settings.host)}:{settings.port}"),
            resource_server_url=None,
        ),
    }


def add_routes(mcp: MCPServer[Any]) -> None:
    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": "mcp-state", "version": __version__})


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Only requests whose Host (and Origin, when sent) name this server are served."""
    hosts = [f"{name}:*" for name in LOOPBACK_NAMES]
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
        hosts.append(f"{_url_host(settings.host)}:*")
    hosts += [h if re.search(r":(\d+|\*)$", h) else f"{h}:*" for h in settings.allowed_hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts],
    )


class DatabaseBusyResponse:
    """A request whose bearer-token check cannot reach the database gets 503 and the reason.

    Every ``/mcp`` request checks its token in the database before any tool runs, so while
    another process holds the file (or it cannot be opened) that check fails. The caller gets
    the clear error ("held by another process (PID n)") as a JSON-RPC error, which MCP clients
    show, instead of a bare 500 and a traceback in the server log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except (DatabaseLockedError, DatabaseUnavailableError) as exc:
            if started:
                raise
            error = {"code": SERVER_ERROR, "message": f"{exc} [{exc.kind}]"}
            response = JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": error}, status_code=503, headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)


def http_app(mcp: MCPServer[Any], settings: ServerSettings) -> Starlette:
    """The ASGI app: ``/mcp`` (bearer token required) and ``/healthz``."""
    app = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=transport_security(settings), host=settings.host
    )
    app.add_middleware(DatabaseBusyResponse)  # outermost: around the token check
    return app


def check_can_bind(settings: ServerSettings) -> int:
    """The number of active tokens; refuses a non-loopback bind while there are none."""
    db = open_database(settings)
    try:
        active = TokenRepository(db).count_active()
    finally:
        db.close()
    if active == 0 and not is_loopback(settings.host):
        raise PermissionDeniedError(
            f"refusing to listen on {settings.host}, which is reachable from other machines, while no "
            "bearer token exists. Create one first with `mcp-state token create --actor NAME --scope read`, "
            "or bind to 127.0.0.1."
        )
    return active


async def serve_http(mcp: MCPServer[Any], settings: ServerSettings) -> None:
    import uvicorn

    config = uvicorn.Config(
        http_app(mcp, settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    await uvicorn.Server(config).serve()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
