"""Argument types and result shapes the tools share.

Arguments are ``Annotated`` types with JSON Schema constraints and a description; results
are ``TypedDict``s (from ``mcp_state.types`` for rows, here for pages), so every tool has an
output schema. Lists are paged: ``items``, ``total`` (null when not counted), ``has_more``
and ``next_offset`` (pass it back as ``offset``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field
from typing_extensions import TypedDict

from mcp_state.errors import NotFoundError
from mcp_state.types import (
    AuditEntry,
    DatasetPermission,
    KnowledgeItem,
    KnowledgeVote,
    PublicUser,
    RegisteredTable,
    Script,
    SyncHistoryEntry,
    SyncSetting,
    SyncState,
    TableProfile,
    TelegramLink,
)

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"Rows per page, 1 to {MAX_LIMIT}.")]
Offset = Annotated[
    int, Field(ge=0, le=10_000_000, description="Rows to skip: 0, or next_offset from the previous page.")
]


def ident(description: str) -> Any:
    """A required id or name: a non-empty string of at most 1024 characters."""
    return Annotated[str, Field(min_length=1, max_length=1024, description=description)]


def optional(description: str, max_length: int = 1024) -> Any:
    return Annotated[str | None, Field(max_length=max_length, description=description)]


TableId = ident("Id of the data table, e.g. 'orders'.")
UserId = ident("Id of the user (legacy users have their email as id).")
ItemId = ident("Id of the knowledge item.")
Dataset = ident("Name of the dataset, e.g. 'sales'.")
ScriptId = ident("Id of the script.")
Count = Annotated[int, Field(ge=0, le=2**62)]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(max_length=100)]

T = TypeVar("T")


def found(row: T | None, what: str, key: str) -> T:
    """``row``, or a NotFoundError naming what was missing."""
    if row is None:
        raise NotFoundError(f"no {what} '{key}' exists")
    return row


def page(fetch: Callable[[int, int], list[Any]], limit: int, offset: int, total: int | None = None) -> Any:
    """One page: fetches ``limit + 1`` rows to know exactly whether more exist."""
    rows = fetch(limit + 1, offset)
    has_more = len(rows) > limit
    items = rows[:limit]
    return {
        "items": items,
        "total": total,
        "has_more": has_more,
        "next_offset": offset + len(items) if has_more else None,
    }


class Deleted(TypedDict):
    deleted: bool
    id: str


class SyncStatePage(TypedDict):
    items: list[SyncState]
    total: int | None
    has_more: bool
    next_offset: int | None


class SyncHistoryPage(TypedDict):
    items: list[SyncHistoryEntry]
    total: int | None
    has_more: bool
    next_offset: int | None


class UserSyncSettings(TypedDict):
    user_id: str
    items: list[SyncSetting]


class UserPage(TypedDict):
    items: list[PublicUser]
    total: int | None
    has_more: bool
    next_offset: int | None


class PermissionPage(TypedDict):
    items: list[DatasetPermission]
    total: int | None
    has_more: bool
    next_offset: int | None


class KnowledgeItemWithVotes(KnowledgeItem):
    upvotes: int
    downvotes: int


class KnowledgePage(TypedDict):
    items: list[KnowledgeItem]
    total: int | None
    has_more: bool
    next_offset: int | None


class VoteResult(TypedDict):
    item_id: str
    user_id: str
    vote: Literal[-1, 1]
    upvotes: int
    downvotes: int


class KnowledgeVotes(TypedDict):
    item_id: str
    upvotes: int
    downvotes: int
    items: list[KnowledgeVote]
    total: int | None
    has_more: bool
    next_offset: int | None


class AuditPage(TypedDict):
    items: list[AuditEntry]
    total: int | None
    has_more: bool
    next_offset: int | None


class LoggedEvent(TypedDict):
    id: str


class TelegramLinkPage(TypedDict):
    items: list[TelegramLink]
    total: int | None
    has_more: bool
    next_offset: int | None


class ScriptPage(TypedDict):
    items: list[Script]
    total: int | None
    has_more: bool
    next_offset: int | None


class RegisteredTablePage(TypedDict):
    items: list[RegisteredTable]
    total: int | None
    has_more: bool
    next_offset: int | None


class TableProfilePage(TypedDict):
    items: list[TableProfile]
    total: int | None
    has_more: bool
    next_offset: int | None
