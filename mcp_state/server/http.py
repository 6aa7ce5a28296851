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
from mcp_state.repositories.tokens import TokenRepository, token_file
from mcp_state.server.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_ACTOR,
    DEFAULT_SESSION_IDLE,
    SessionCaps,
)
from mcp_state.server.state import Runtime, ServerSettings, open_database
from mcp_state.server.tokens import TokenCache

logger = logging.getLogger("mcp_state.server")
MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SERVER_ERROR = -32000  # JSON-RPC: implementation-defined server error


class DatabaseTokenVerifier:
    """Checks bearer tokens against the active tokens' hashes held in memory (``TokenCache``).

    A database in memory (tests) has no token file: there the token is checked in the database.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        path = runtime.settings.db_path or ""
        self.cache = None if token_file(path) is None else TokenCache(path, touch=self._touch)

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.cache is not None:
            found = self.cache.lookup(token)
            record: dict[str, Any] | None = None if found is None else dict(found)
        else:
            record = await anyio.to_thread.run_sync(self.runtime.state.repos.tokens.verify, token)  # type: ignore[arg-type]
        if record is None:
            logger.warning("refused a request: its bearer token is unknown or revoked")  # never the token
            return None
        return AccessToken(
            token=token, client_id=record["actor"], scopes=[record["scope"]], claims={"id": record["id"]}
        )

    def _touch(self, token_id: str) -> None:
        # Only while this process has the file open: noting a use never waits for another
        # process's lock (a call waiting behind it would wait twice). Skipped uses are noted on
        # the next request that finds the file open (TokenCache forgets the skip, see below).
        if not self.runtime.state.db.is_open:
            raise DatabaseLockedError("the file is not open here; the use is noted on a later request")
        self.runtime.state.repos.tokens.touch(token_id)


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


class RequireToken:
    """Outermost check: every HTTP request but ``GET /healthz`` needs an active bearer token.

    The SDK checks the token on ``/mcp``; this second check covers any route added or matched
    around it (``/mcp/``, a custom route), and answers before anything else runs: no database,
    no path, PID or version in the answer.
    """

    def __init__(self, app: ASGIApp, verifier: DatabaseTokenVerifier, caps: SessionCaps) -> None:
        self.app = app
        self.verifier = verifier
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        access = await self.verifier.verify_token(token.strip()) if kind.lower() == "bearer" else None
        if access is None:
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        opening = scope.get("method") == "POST" and b"mcp-session-id" not in dict(scope.get("headers") or [])
        refusal = self.caps.refusal(access.client_id) if opening else None
        if refusal is not None:
            error = {"code": SERVER_ERROR, "message": refusal}
            busy = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=503)
            await busy(scope, receive, send)
            return
        await self.app(scope, receive, send)


def add_routes(mcp: MCPServer[Any]) -> None:
    @mcp.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)
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
    """The ASGI app: ``/mcp`` (bearer token required) and ``/healthz``.

    The token file is published from the database first, so that it matches the database
    even if tokens were made by an older mcp-state or copied with the file.
    """
    publish_tokens(settings)
    app = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(settings),
        host=settings.host,
        max_sessions=settings.max_sessions,
        session_idle_timeout=settings.session_idle,
    )
    caps = SessionCaps(
        mcp.session_manager,
        total=settings.max_sessions or DEFAULT_MAX_SESSIONS,
        per_actor=settings.max_sessions_per_actor or DEFAULT_MAX_SESSIONS_PER_ACTOR,
        idle=settings.session_idle or DEFAULT_SESSION_IDLE,
    )
    caps.install()
    verifier = getattr(mcp, "_token_verifier", None)
    if isinstance(verifier, DatabaseTokenVerifier):
        app.add_middleware(RequireToken, verifier=verifier, caps=caps)
    app.add_middleware(DatabaseBusyResponse)  # outermost: around the token check
    return app


def publish_tokens(settings: ServerSettings) -> None:
    if token_file(settings.db_path or "") is None:
        return
    db = open_database(settings)
    try:
        TokenRepository(db).publish()
    finally:
        db.close()


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
