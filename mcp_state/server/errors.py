"""Domain errors become MCP errors here, and only here.

A ``StateError`` keeps its message (written for the caller, never carrying a secret or SQL)
and gains the next step to take. Anything else is a crash: the client gets a generic
message, and the server log gets the exception type and the code path, never its text
(a database error can quote the values it choked on).
"""

from __future__ import annotations

import logging
import traceback

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from pydantic import ValidationError

from mcp_state.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError, StateError

logger = logging.getLogger("mcp_state.server")

INTERNAL = "internal_error"

_NEXT_STEP = {
    "invalid_argument": "Fix the argument and call again.",
    "conflict": "",
    "permission_denied": "",
    "locked": "",
    "unavailable": "",
}


def error_kind(exc: BaseException) -> str:
    """What goes in the audit log's ``result`` for a failed call."""
    return exc.kind if isinstance(exc, StateError) else INTERNAL


def tool_error(tool: str, exc: BaseException, hint: str = "") -> ToolError:
    """The tool error an agent sees for ``exc`` raised by ``tool``."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, StateError):
        message = str(exc).rstrip(".")
        next_step = hint if isinstance(exc, NotFoundError) else _NEXT_STEP.get(exc.kind, "")
        return ToolError(f"{message}. {next_step}".strip() + f" [{exc.kind}]")
    log_crash(f"tool {tool}", exc)
    return ToolError(
        f"internal error in {tool}; nothing was changed. Retry once; if it fails again, "
        f"tell the operator (the server log has the details). [{INTERNAL}]"
    )


def invalid_arguments(tool: str, exc: ValidationError) -> ToolError:
    """A concise argument error that names the fields and rules but never echoes the values."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        problems.append(f"{where}: {err['msg']}")
    return ToolError(
        f"invalid arguments for {tool}: {'; '.join(problems)}. Fix them (see the tool's input schema) "
        f"and call again. [{InvalidArgumentError.kind}]"
    )


def resource_error(uri: str, exc: BaseException) -> ResourceError:
    if isinstance(exc, ResourceError):
        return exc
    if isinstance(exc, NotFoundError):
        return ResourceNotFoundError(str(exc))
    if isinstance(exc, StateError):
        return ResourceError(str(exc))
    log_crash(f"resource {uri}", exc)
    return ResourceError(f"internal error reading {uri}; retry once, then tell the operator")


def log_crash(where: str, exc: BaseException) -> None:
    """Log a crash without its message: the type and the code path are enough to debug."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("%s failed unexpectedly with %s\n%s", where, type(exc).__name__, frames.rstrip())


def permission_denied(tool: str, scope: str, needed: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"this token has the '{scope}' scope and {tool} needs '{needed}'. Use a tool that only reads, "
        f"or ask the operator for a token created with `mcp-state token create --scope {needed}`"
    )
