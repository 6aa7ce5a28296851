"""Knowledge tools: corporate-memory items, their review status and votes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mcp_state.errors import InvalidArgumentError
from mcp_state.repositories.knowledge import sort_key, vote_key
from mcp_state.server import authz
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.results import read_field
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Cursor,
    Deleted,
    ItemId,
    KnowledgeConfirmation,
    KnowledgeItemWithVotes,
    KnowledgePage,
    KnowledgeSearchPage,
    KnowledgeVotes,
    Limit,
    Tags,
    VoteResult,
    found,
)
from mcp_state.types import KnowledgeStatus

knowledge = Toolset("knowledge", hint="Call search_knowledge or list_knowledge_items to find the item's id.")

Statuses = Annotated[
    list[KnowledgeStatus] | None, Field(max_length=4, description="Only items with one of these statuses.")
]
Category = Annotated[str | None, Field(max_length=200, description="Category, e.g. 'metrics'.")]
Title = Annotated[str, Field(min_length=1, max_length=500, description="Short title.")]
Content = Annotated[str | None, Field(max_length=100_000, description="The knowledge itself (markdown).")]
Audience = Annotated[str | None, Field(max_length=200, description="Who it is for, e.g. 'all'.")]
ItemTags = Annotated[Tags, Field(description="Tags, e.g. ['revenue'].")]
# A default page of summaries (about 400 characters each) fits the default result budget whole.
SUMMARY_LIMIT = 25
Tag = Annotated[str | None, Field(max_length=200, description="Only items with this tag.")]


def confirmation(call: Call, item_id: str) -> KnowledgeConfirmation:
    """The stored item without its content (what a write confirms)."""
    item = found(call.repos.knowledge.get_by_id(item_id), "knowledge item", item_id)
    return {**{k: v for k, v in item.items() if k != "content"}, "content_chars": len(item["content"] or "")}  # type: ignore[typeddict-item]


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "created_at"}


@knowledge.read("Get knowledge item")
def get_knowledge_item(
    call: Call,
    item_id: ItemId,
    content_offset: Annotated[
        int, Field(ge=0, description="Start the content here (next_content_offset of a cut result).")
    ] = 0,
) -> KnowledgeItemWithVotes:
    """Get one knowledge item with its vote counts; long content comes in parts."""
    repo = call.repos.knowledge
    item = found(repo.get_by_id(item_id), "knowledge item", item_id)
    return read_field({**item, **repo.get_votes(item_id)}, "content", content_offset, call.budget)  # type: ignore[return-value]


@knowledge.read("List knowledge items")
def list_knowledge_items(
    call: Call,
    status: Statuses = None,
    category: Category = None,
    tag: Tag = None,
    sort: Annotated[
        Literal["updated", "votes", "created"], Field(description="Newest change, net votes or newest.")
    ] = "updated",
    limit: Limit = SUMMARY_LIMIT,
    cursor: Cursor = None,
    include_content: Annotated[bool, Field(description="Full content instead of a snippet.")] = False,
) -> KnowledgePage:
    """List knowledge item summaries with votes, by status (e.g. ['pending']), category and tag."""
    repo = call.repos.knowledge
    kind = f"knowledge:{sort}"
    rows = repo.list_summaries(
        status,
        category,
        tag,
        sort,
        limit + 1,
        after_of(kind, cursor),
        include_content=include_content,
        content_limit=call.budget,  # more could not be shown: get_knowledge_item reads the rest
    )
    total = repo.count_items(status, category) if tag is None else None
    return page(rows, limit, kind=kind, key=lambda row: sort_key(sort, row), total=total, shape=_listed)


@knowledge.read("Search knowledge")
def search_knowledge(
    call: Call,
    query: Annotated[str, Field(min_length=1, max_length=200, description="Words to find; any may match.")],
    status: Statuses = None,
    tag: Tag = None,
    limit: Limit = SUMMARY_LIMIT,
    cursor: Cursor = None,
) -> KnowledgeSearchPage:
    """Search titles, tags and content for any of the words, best match first (score; total is null)."""
    repo = call.repos.knowledge
    rows = repo.search_ranked(query, status, tag, limit + 1, after_of("knowledge:search", cursor))
    return page(rows, limit, kind="knowledge:search", key=lambda r: (r["score"], r["id"]), shape=_listed)


@knowledge.write("Create knowledge item", resource="id", destructive=False, idempotent=False)
def create_knowledge_item(
    call: Call,
    id: Annotated[str, Field(min_length=1, max_length=1024, description="New item's id, e.g. 'km_042'.")],
    title: Title,
    content: Content = None,
    category: Category = None,
    tags: ItemTags = None,
    audience: Audience = None,
    status: Annotated[
        KnowledgeStatus, Field(description="Review status; new items are pending.")
    ] = "pending",
) -> KnowledgeConfirmation:
    """Propose a new knowledge item (you are recorded as its source); fails if the id exists."""
    authz.review_decision(call, status)
    call.repos.knowledge.create(
        id,
        title,
        content,
        category,
        source_user=call.actor,
        tags=tags,
        status=status,
        contributors=[call.actor],
        audience=audience,
    )
    return confirmation(call, id)


@knowledge.write("Update knowledge item", resource="item_id", destructive=True, idempotent=True)
def update_knowledge_item(
    call: Call,
    item_id: ItemId,
    title: Annotated[Title | None, Field(description="New title.")] = None,
    content: Content = None,
    category: Category = None,
    tags: ItemTags = None,
    audience: Audience = None,
) -> KnowledgeConfirmation:
    """Change a knowledge item's title, content, category, tags or audience (left out: unchanged)."""
    if all(value is None for value in (title, content, category, tags, audience)):
        raise InvalidArgumentError(
            "nothing to change: give at least one of title, content, category, tags, audience"
        )
    call.repos.knowledge.update(
        item_id, title=title, content=content, category=category, tags=tags, audience=audience
    )
    return confirmation(call, item_id)


@knowledge.write("Set knowledge status", resource="item_id", destructive=True, idempotent=True)
def set_knowledge_status(
    call: Call,
    item_id: ItemId,
    status: Annotated[KnowledgeStatus, Field(description="approved, rejected, archived or pending.")],
) -> KnowledgeConfirmation:
    """Approve, reject, archive or reopen a knowledge item after review."""
    authz.review_decision(call, status)
    call.repos.knowledge.update_status(item_id, status)
    return confirmation(call, item_id)


@knowledge.write("Delete knowledge item", resource="item_id", destructive=True, idempotent=True)
def delete_knowledge_item(call: Call, item_id: ItemId) -> Deleted:
    """Delete a knowledge item and its votes for good (to hide it, set its status to archived instead)."""
    call.repos.knowledge.delete(item_id)
    return {"deleted": True, "id": item_id}


@knowledge.write("Vote on knowledge item", resource="item_id", destructive=True, idempotent=True)
def vote_knowledge_item(
    call: Call,
    item_id: ItemId,
    vote: Annotated[Literal[1, -1], Field(description="1 for useful, -1 for not.")],
    user_id: Annotated[
        str | None, Field(min_length=1, max_length=1024, description="Voter; defaults to you.")
    ] = None,
) -> VoteResult:
    """Cast or change a vote on a knowledge item; returns its new vote counts."""
    voter = authz.acting_user(call, user_id, "voting")
    counts = call.repos.knowledge.vote(item_id, voter, vote)
    return {"item_id": item_id, "user_id": voter, "vote": vote, **counts}


@knowledge.read("Get knowledge votes")
def get_knowledge_votes(
    call: Call, item_id: ItemId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> KnowledgeVotes:
    """List who voted how on a knowledge item, newest first, with its vote counts."""
    repo = call.repos.knowledge
    found(repo.get_by_id(item_id), "knowledge item", item_id)
    counts = repo.get_votes(item_id)
    rows = repo.list_votes(item_id, limit=limit + 1, after=after_of("votes", cursor))
    total = counts["upvotes"] + counts["downvotes"]
    return page(rows, limit, kind="votes", key=vote_key, total=total, item_id=item_id, **counts)
