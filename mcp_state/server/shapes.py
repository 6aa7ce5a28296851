"""Argument types and result shapes the tools share.

Arguments are ``Annotated`` types with JSON Schema constraints and a description; results
are ``TypedDict``s (from ``mcp_state.types`` for rows, here for pages), so every tool has an
output schema. Lists are paged (``paging.Page``): ``items``, ``has_more``, ``next_cursor`` (pass it back as
``cursor``), ``total`` (null when not counted) and ``as_of``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, TypeVar

from pydantic import Field
from typing_extensions import TypedDict

from mcp_state.errors import NotFoundError
from mcp_state.server.paging import Page, Truncation
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
Cursor = Annotated[str | None, Field(max_length=2000, description="next_cursor of the previous page.")]


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
Millis = Annotated[int, Field(ge=0, le=2**31 - 1)]  # an INTEGER column
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(max_length=100)]

T = TypeVar("T")


def found(row: T | None, what: str, key: str) -> T:
    """``row``, or a NotFoundError naming what was missing."""
    if row is None:
        raise NotFoundError(f"no {what} '{key}' exists")
    return row


def page(fetch: Callable[[int, int], list[Any]], limit: int, offset: int, total: int | None = None) -> Any:
    """One offset page (sync and audit lists, until they move to cursors like the others)."""
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


class AuditPage(TypedDict):
    items: list[AuditEntry]
    total: int | None
    has_more: bool
    next_offset: int | None


class UserSyncSettings(TypedDict):
    user_id: str
    items: list[SyncSetting]


class KnowledgeSummary(TypedDict):
    """A knowledge item in a list: its content only as a snippet (``include_content`` for all of it)."""

    id: str
    title: str
    status: str | None
    category: str | None
    tags: list[str] | None
    snippet: str | None
    upvotes: int
    downvotes: int
    updated_at: datetime | None
    content: NotRequired[str | None]
    content_chars: NotRequired[int | None]


class KnowledgeHit(KnowledgeSummary):
    score: float


class KnowledgeItemWithVotes(KnowledgeItem, Truncation):
    upvotes: int
    downvotes: int
    content_chars: NotRequired[int]
    next_content_offset: NotRequired[int | None]


class KnowledgeConfirmation(TypedDict):
    """A written knowledge item without its content (``content_chars`` says how long it is)."""

    id: str
    title: str
    category: str | None
    tags: list[str] | None
    status: str | None
    audience: str | None
    source_user: str | None
    contributors: list[str] | None
    content_chars: int
    created_at: datetime | None
    updated_at: datetime | None


class VoteResult(TypedDict):
    item_id: str
    user_id: str
    vote: Literal[-1, 1]
    upvotes: int
    downvotes: int


class KnowledgeVotes(Page):
    items: list[KnowledgeVote]
    item_id: str
    upvotes: int
    downvotes: int


class LoggedEvent(TypedDict):
    id: str


class ScriptSummary(TypedDict):
    """A script without its source (``source_chars`` says how long it is)."""

    id: str
    name: str
    owner: str | None
    schedule: str | None
    deployed_at: datetime | None
    last_run: datetime | None
    last_status: str | None
    source_chars: int


class ScriptDetail(Script, Truncation):
    source_chars: NotRequired[int]
    next_source_offset: NotRequired[int | None]


class ProfileSummary(TypedDict):
    table_id: str
    profiled_at: datetime | None
    column_count: int
    size_chars: int


class ProfileConfirmation(ProfileSummary):
    pass


class ProfileDetail(TableProfile, Truncation):
    pass


class UserPage(Page):
    items: list[PublicUser]


class PermissionPage(Page):
    items: list[DatasetPermission]


class KnowledgePage(Page):
    items: list[KnowledgeSummary]


class KnowledgeSearchPage(Page):
    items: list[KnowledgeHit]


class TelegramLinkPage(Page):
    items: list[TelegramLink]


class ScriptPage(Page):
    items: list[ScriptSummary]


class RegisteredTablePage(Page):
    items: list[RegisteredTable]


class TableProfilePage(Page):
    items: list[ProfileSummary]


def compact_schema(schema: Any) -> Any:
    """The same JSON Schema, shorter: agents pay for ``tools/list`` in context.

    Drops ``title`` annotations (pydantic's "Table Id" echoes of property names) and puts a ``$defs``
    entry used once in place of its ``$ref`` (clients validate every result against the output
    schema, and resolving a ``$ref`` per list item was most of that work). Validation is unchanged.
    Nullable types stay ``anyOf [X, null]``: type arrays fail strict portability checks.
    """
    return _compact(inline_single_refs(schema))


_DEF_PREFIX = "#/$defs/"
ANY_JSON = {"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean", "null")]}
# Keywords that may sit next to a ``$ref`` and be merged into the inlined definition: annotations only.
_REF_SIBLINGS = frozenset({"description", "title", "default", "examples"})


def inline_single_refs(schema: Any) -> Any:
    """``schema`` with each ``$defs`` entry that is referenced once (and not from itself,
    directly or not) written in place of its ``$ref``; other entries stay in ``$defs``."""
    if not isinstance(schema, dict) or not isinstance(schema.get("$defs"), dict):
        return schema
    defs: dict[str, Any] = schema["$defs"]
    counts: dict[str, int] = {}
    edges: dict[str, set[str]] = {name: set(_refs(sub)) for name, sub in defs.items()}
    for name in _refs({k: v for k, v in schema.items() if k != "$defs"}) + [
        ref for sub in defs.values() for ref in _refs(sub)
    ]:
        counts[name] = counts.get(name, 0) + 1
    inline = {name for name in defs if counts.get(name) == 1 and not _reaches(name, name, edges)}

    def substitute(node: Any) -> Any:
        if isinstance(node, list):
            return [substitute(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEF_PREFIX) and ref[len(_DEF_PREFIX) :] in inline:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if set(siblings) <= _REF_SIBLINGS:
                return {**substitute(defs[ref[len(_DEF_PREFIX) :]]), **siblings}
        return {key: substitute(value) for key, value in node.items()}

    out = {key: substitute(value) for key, value in schema.items() if key != "$defs"}
    kept = {name: substitute(sub) for name, sub in defs.items() if name not in inline or name in _refs(out)}
    if kept:
        out["$defs"] = kept
    return out


def _refs(node: Any) -> list[str]:
    """Names of the ``$defs`` entries ``node`` refers to, once per reference."""
    if isinstance(node, list):
        return [name for item in node for name in _refs(item)]
    if not isinstance(node, dict):
        return []
    found = [node["$ref"][len(_DEF_PREFIX) :]] if str(node.get("$ref", "")).startswith(_DEF_PREFIX) else []
    return found + [name for key, value in node.items() if key != "$ref" for name in _refs(value)]


def _reaches(start: str, target: str, edges: dict[str, set[str]]) -> bool:
    seen: set[str] = set()
    stack = list(edges.get(start, ()))
    while stack:
        name = stack.pop()
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(edges.get(name, ()))
    return False


def _compact(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_compact(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _compact(value) for key, value in schema.items() if key != "title"}
    if out.get("items") == {}:  # "any JSON value", spelled with keywords (strict checks flag a bare {})
        out["items"] = ANY_JSON
    for names in ("properties", "$defs"):  # keys here are names, not keywords: keep a field called "title"
        if isinstance(schema.get(names), dict):
            out[names] = {name: _compact(sub) for name, sub in schema[names].items()}
    return out
