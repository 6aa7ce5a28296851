"""Typed shapes of every row and result, in one place.

Rows are ``TypedDict``s: plain dicts for Python callers (the seed plan's contract), and a
source of JSON Schema for the MCP tools' output schemas. Datetimes are timezone-aware UTC.
The documented value sets (statuses, roles, access levels) live here too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, get_args

# pydantic (and so the MCP SDK's output schemas) needs typing_extensions.TypedDict on Python < 3.12.
from typing_extensions import TypedDict

SyncStatus = Literal["ok", "error", "running", "skipped"]
Role = Literal["admin", "analyst", "viewer"]
KnowledgeStatus = Literal["pending", "approved", "rejected", "archived"]
Access = Literal["read", "write", "admin"]
TableMode = Literal["all", "selected"]
ScriptStatus = Literal["ok", "error", "running", "skipped"]
Vote = Literal[-1, 1]

SYNC_STATUSES: tuple[str, ...] = get_args(SyncStatus)
ROLES: tuple[str, ...] = get_args(Role)
KNOWLEDGE_STATUSES: tuple[str, ...] = get_args(KnowledgeStatus)
ACCESS_LEVELS: tuple[str, ...] = get_args(Access)
TABLE_MODES: tuple[str, ...] = get_args(TableMode)
SCRIPT_STATUSES: tuple[str, ...] = get_args(ScriptStatus)


class SyncState(TypedDict):
    table_id: str
    last_sync: datetime | None
    rows: int | None
    file_size_bytes: int | None
    uncompressed_size_bytes: int | None
    columns: int | None
    hash: str | None
    status: str | None
    error: str | None


class SyncHistoryEntry(TypedDict):
    id: str
    table_id: str
    synced_at: datetime
    rows: int | None
    duration_ms: int | None
    status: str | None
    error: str | None
    seq: int
    note: NotRequired[str | None]


class SyncFailureSummary(TypedDict):
    """One table's failed syncs in a time window (``summarize_sync_failures``)."""

    table_id: str
    failures: int
    syncs: int
    last_failure_at: datetime | None
    last_error: str | None
    current_status: str | None
    last_sync: datetime | None


class SyncSetting(TypedDict):
    user_id: str
    dataset: str
    enabled: bool | None
    table_mode: str | None
    tables: list[str] | None
    updated_at: datetime | None


class PublicUser(TypedDict):
    """A user as tools and resources show it: no password hash, no tokens."""

    id: str
    email: str
    name: str | None
    role: str | None
    created_at: datetime | None
    updated_at: datetime | None
    has_password: NotRequired[bool]


class User(TypedDict):
    """A user row as the Python API returns it, secrets included."""

    id: str
    email: str
    name: str | None
    role: str | None
    password_hash: str | None
    setup_token: str | None
    setup_token_created: datetime | None
    reset_token: str | None
    reset_token_created: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class DatasetPermission(TypedDict):
    user_id: str
    dataset: str
    access: str


class KnowledgeItem(TypedDict):
    id: str
    title: str
    content: str | None
    category: str | None
    tags: list[str] | None
    status: str | None
    contributors: list[str] | None
    source_user: str | None
    audience: str | None
    created_at: datetime | None
    updated_at: datetime | None


class VoteCounts(TypedDict):
    upvotes: int
    downvotes: int


class KnowledgeVote(TypedDict):
    item_id: str
    user_id: str
    vote: int
    voted_at: datetime | None


class AuditEntry(TypedDict):
    id: str
    timestamp: datetime
    user_id: str | None
    action: str
    resource: str | None
    params: dict[str, Any] | list[Any] | None
    result: str | None
    duration_ms: int | None
    seq: int


class TelegramLink(TypedDict):
    user_id: str
    chat_id: int
    linked_at: datetime | None


class PendingCode(TypedDict):
    """What a verified code yields: the chat that asked for it (never the code)."""

    chat_id: int
    created_at: datetime | None


class Script(TypedDict):
    id: str
    name: str
    owner: str | None
    schedule: str | None
    source: str
    deployed_at: datetime | None
    last_run: datetime | None
    last_status: str | None


class RegisteredTable(TypedDict):
    id: str
    name: str
    folder: str | None
    sync_strategy: str | None
    primary_key: str | None
    description: str | None
    registered_by: str | None
    registered_at: datetime | None


class TableProfile(TypedDict):
    table_id: str
    profile: dict[str, Any]
    profiled_at: datetime | None


class ApiToken(TypedDict):
    """A bearer token's record, without its hash."""

    id: str
    actor: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
