"""Every domain error mcp-state raises.

Repositories and the database layer raise these; the MCP server translates them to tool
errors at its edge (``mcp_state.server``), the CLI to a message and a non-zero exit.
Messages are written for the caller: they say what went wrong and what to do next, and
they never carry a secret or a raw SQL statement.
"""

from __future__ import annotations


class StateError(Exception):
    """Base class of every error mcp-state raises on purpose."""

    kind = "error"


class NotFoundError(StateError):
    """The row the caller named does not exist."""

    kind = "not_found"


class ConflictError(StateError):
    """The change would break a uniqueness rule (for example a second user with one email)."""

    kind = "conflict"


class TransientConflictError(ConflictError):
    """Concurrent transactions collided (a deadlock, a serialization failure) and retries ran out."""

    kind = "transient_conflict"


class InvalidArgumentError(StateError, ValueError):
    """An argument is outside what the operation accepts (a vote of 5, an unknown role)."""

    kind = "invalid_argument"


class PermissionDeniedError(StateError):
    """The caller's token does not allow this operation."""

    kind = "permission_denied"


class InvalidSQLError(StateError):
    """A statement given to the read-only SQL tool was refused or failed."""

    kind = "invalid_sql"


class QueryTimeoutError(InvalidSQLError):
    """A read-only query ran longer than its time limit and was interrupted."""

    kind = "timeout"


class SchemaError(StateError):
    """The database schema cannot be brought to the version this code needs."""

    kind = "schema"


class DatabaseLockedError(StateError):
    """Another process holds the database file and did not let go within the wait."""

    kind = "locked"


class DatabaseUnavailableError(StateError):
    """The database file cannot be opened or written (missing directory, read-only, disk full)."""

    kind = "unavailable"


class DatabaseDamagedError(DatabaseUnavailableError):
    """The database file or its WAL is damaged; restore a backup or run ``mcp-state recover``."""

    kind = "damaged"


class MigrationError(StateError):
    """A legacy JSON file or entry cannot be migrated; nothing was written."""

    kind = "migration"


class NotConfirmedError(StateError):
    """The person behind the agent declined or cancelled a destructive call; nothing changed."""

    kind = "cancelled"


class WorkerDiedError(StateError):
    """A SQL worker process ended without answering (killed at the deadline, or out of address space).

    Internal to the SQL pool, which turns it into a timeout or resource error; never shown as is.
    """

    kind = "worker_died"
