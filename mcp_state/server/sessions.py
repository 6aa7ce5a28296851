"""Caps on open HTTP sessions: per token actor and in total, with an error that says so.

Each MCP session over HTTP holds a task and its buffers until the client ends it or it has
been idle for ``session_idle`` seconds. Without a cap per caller, one token could open
sessions until the total cap locks every other caller out. ``SessionCaps.refusal`` is
checked before a new session is admitted (the clear message), and the SDK's admission is
wrapped with the same check under its lock (so racing requests cannot overshoot).

Configured with ``MCP_STATE_MAX_SESSIONS`` (total, default 500),
``MCP_STATE_MAX_SESSIONS_PER_ACTOR`` (default 50) and ``MCP_STATE_SESSION_IDLE`` (seconds,
default 600).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

DEFAULT_MAX_SESSIONS = 500
DEFAULT_MAX_SESSIONS_PER_ACTOR = 50
DEFAULT_SESSION_IDLE = 600.0


class SessionCaps:
    """The caps of one session manager (installed with ``install``)."""

    def __init__(
        self, manager: StreamableHTTPSessionManager, total: int, per_actor: int, idle: float
    ) -> None:
        self.manager = manager
        self.total = total
        self.per_actor = per_actor
        self.idle = idle

    def install(self) -> None:
        admit: Callable[[Any], Any] = self.manager._admit_session

        def capped(requestor: Any) -> Any:
            actor = requestor.get("client_id") if isinstance(requestor, dict) else None
            if self.refusal(actor) is not None:
                return None  # the SDK answers 503 "Too many open sessions"
            return admit(requestor)

        self.manager._admit_session = capped  # type: ignore[method-assign]

    def open_sessions(self, actor: str | None = None) -> int:
        owners = self.manager._session_owners
        if actor is None:
            return len(self.manager._server_instances)
        return sum(1 for owner in list(owners.values()) if owner.get("client_id") == actor)

    def refusal(self, actor: str | None) -> str | None:
        """Why a new session for ``actor`` is refused now, or None."""
        wait = f"end a session you no longer use (HTTP DELETE), or wait: idle sessions close after {self.idle:g} s"
        if actor is not None and self.open_sessions(actor) >= self.per_actor:
            return (
                f"too many open sessions for '{actor}': at most {self.per_actor} per token actor "
                f"(MCP_STATE_MAX_SESSIONS_PER_ACTOR); {wait}"
            )
        if self.open_sessions() >= self.total:
            return (
                f"the server has its maximum of {self.total} open sessions (MCP_STATE_MAX_SESSIONS); {wait}"
            )
        return None
