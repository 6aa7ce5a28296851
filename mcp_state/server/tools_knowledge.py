"""Knowledge tools: corporate-memory items, their review status and votes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mcp_state.errors import InvalidArgumentError
from mcp_state.repositories.references import References
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Deleted,
    ItemId,
    KnowledgeItemWithVotes,
    KnowledgePage,
    KnowledgeVotes,
    Limit,
    Offset,
    Tags,
    VoteResult,
    found,
    page,
)
from mcp_state.types import KnowledgeItem, KnowledgeStatus

knowledge = Toolset("knowledge", hint="Call search_knowledge or list_knowledge_items to find the item's id.")

Statuses = Annotated[
    list[KnowledgeStatus] | None, Field(max_length=4, description="Only items with one of these statuses.")
]
Category = Annotated[str | None, Field(max_length=200, description="Category, e.g. 'metrics'.")]
Title = Annotated[str, Field(min_length=1, max_length=500, description="Short title.")]
Content = Annotated[str | None, Field(max_length=100_000, description="The knowledge itself (markdown).")]
Audience = Annotated[str | None, Field(max_length=200, description="Who it is for, e.g. 'all'.")]
ItemTags = Annotated[Tags, Field(description="Tags, e.g. ['revenue'].")]


@knowledge.read("Get knowledge item")
def get_knowledge_item(call: Call, item_id: ItemId) -> KnowledgeItemWithVotes:
    """Get one knowledge item with its up- and down-vote counts."""
    repo = call.repos.knowledge
    item = found(repo.get_by_id(item_id), "knowledge item", item_id)
    return {**item, **repo.get_votes(item_id)}  # type: ignore[typeddict-item]


@knowledge.read("List knowledge items")
def list_knowledge_items(
    call: Call,
    status: Statuses = None,
    category: Category = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> KnowledgePage:
    """List knowledge items, most recently changed first, by status (e.g. ['pending']) and category."""
    repo = call.repos.knowledge
    return page(  # type: ignore[no-any-return]
        lambda n, skip: repo.list_items(status, category, limit=n, offset=skip),
        limit,
        offset,
        repo.count_items(status, category),
    )


@knowledge.read("Search knowledge")
def search_knowledge(
    call: Call,
    query: Annotated[
        str, Field(min_length=1, max_length=200, description="Text to find in titles and content.")
    ],
    status: Statuses = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> KnowledgePage:
    """Find knowledge items whose title or content contains the text (case-insensitive; total is null)."""
    repo = call.repos.knowledge
    return page(  # type: ignore[no-any-return]
        lambda n, skip: repo.search(query, limit=n, offset=skip, statuses=status), limit, offset
    )


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
) -> KnowledgeItem:
    """Propose a new knowledge item (you are recorded as its source); fails if the id exists."""
    return call.repos.knowledge.create(
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


@knowledge.write("Update knowledge item", resource="item_id", destructive=True, idempotent=True)
def update_knowledge_item(
    call: Call,
    item_id: ItemId,
    title: Annotated[Title | None, Field(description="New title.")] = None,
    content: Content = None,
    category: Category = None,
    tags: ItemTags = None,
    audience: Audience = None,
) -> KnowledgeItem:
    """Change a knowledge item's title, content, category, tags or audience (left out: unchanged)."""
    if all(value is None for value in (title, content, category, tags, audience)):
        raise InvalidArgumentError(
            "nothing to change: give at least one of title, content, category, tags, audience"
        )
    return call.repos.knowledge.update(
        item_id, title=title, content=content, category=category, tags=tags, audience=audience
    )


@knowledge.write("Set knowledge status", resource="item_id", destructive=True, idempotent=True)
def set_knowledge_status(
    call: Call,
    item_id: ItemId,
    status: Annotated[KnowledgeStatus, Field(description="approved, rejected, archived or pending.")],
) -> KnowledgeItem:
    """Approve, reject, archive or reopen a knowledge item after review."""
    return call.repos.knowledge.update_status(item_id, status)


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
    voter = References(call.repos.gateway).user(user_id or call.actor, "user_id (you, when left out)")
    counts = call.repos.knowledge.vote(item_id, voter, vote)
    return {"item_id": item_id, "user_id": voter, "vote": vote, **counts}


@knowledge.read("Get knowledge votes")
def get_knowledge_votes(
    call: Call, item_id: ItemId, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> KnowledgeVotes:
    """List who voted how on a knowledge item, newest first, with its vote counts."""
    repo = call.repos.knowledge
    found(repo.get_by_id(item_id), "knowledge item", item_id)
    counts = repo.get_votes(item_id)
    votes = page(
        lambda n, skip: repo.list_votes(item_id, limit=n, offset=skip),
        limit,
        offset,
        counts["upvotes"] + counts["downvotes"],
    )
    return {"item_id": item_id, **counts, **votes}  # type: ignore[typeddict-item]
