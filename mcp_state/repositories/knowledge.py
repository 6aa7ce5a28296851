"""Repository for corporate memory knowledge items and votes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Json, utc_now
from mcp_state.repositories.base import (
    Repository,
    check_choice,
    check_id,
    check_page,
    check_str_list,
    like_pattern,
)
from mcp_state.types import KNOWLEDGE_STATUSES, KnowledgeItem, KnowledgeVote, VoteCounts

# Most recently changed first, in commit order (``change_seq``, a new number on every change
# made here), never by the clock: an update made while the clock stood an hour back still sorts
# first. Items never changed here (imported, or older than migration 4) have none and follow,
# by time.
ITEM_ORDER = "change_seq DESC NULLS LAST, coalesce(updated_at, created_at) DESC NULLS LAST, id"
NEXT_CHANGE = "nextval('knowledge_change_seq')"


class KnowledgeRepository(Repository):
    table = "knowledge_items"
    order_by = ITEM_ORDER
    noun = "knowledge item"
    hidden = ("change_seq",)

    def get_by_id(self, item_id: str) -> KnowledgeItem | None:
        return self._get(item_id)  # type: ignore[return-value]

    def create(
        self,
        id: str,
        title: str,
        content: str | None,
        category: str | None,
        source_user: str | None = None,
        tags: list[str] | None = None,
        status: str = "pending",
        contributors: list[str] | None = None,
        audience: str | None = None,
        created_at: datetime | None = None,
    ) -> KnowledgeItem:
        check_id("id", id)
        check_id("title", title)
        check_choice("status", status, KNOWLEDGE_STATUSES)
        tags = check_str_list("tags", tags)
        contributors = check_str_list("contributors", contributors)
        now = created_at or utc_now()
        with self.db.transaction():
            self.db.execute(
                f"""INSERT INTO knowledge_items (id, title, content, category, source_user, tags, status,
                       contributors, audience, created_at, updated_at, change_seq)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NEXT_CHANGE})""",
                [
                    id,
                    title,
                    content,
                    category,
                    source_user,
                    Json(tags),
                    status,
                    Json(contributors),
                    audience,
                    now,
                    now,
                ],
            )
            return self._require(id)  # type: ignore[return-value]

    def update(
        self,
        item_id: str,
        *,
        title: str | None = None,
        content: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        audience: str | None = None,
    ) -> KnowledgeItem:
        """Change the given fields (None leaves a field as it is)."""
        if title is not None:
            check_id("title", title)
        changes: dict[str, Any] = {
            "title": title,
            "content": content,
            "category": category,
            "tags": None if tags is None else Json(check_str_list("tags", tags)),
            "audience": audience,
        }
        changes = {col: value for col, value in changes.items() if value is not None}
        with self.db.transaction():
            self._require(item_id)
            if changes:
                changes["updated_at"] = utc_now()
                assignments = ", ".join(f"{col} = ?" for col in changes)  # fixed column names
                self.db.execute(
                    f"UPDATE knowledge_items SET {assignments}, change_seq = {NEXT_CHANGE} WHERE id = ?",
                    [*changes.values(), item_id],
                )
            return self._require(item_id)  # type: ignore[return-value]

    def update_status(self, item_id: str, status: str) -> KnowledgeItem:
        check_choice("status", status, KNOWLEDGE_STATUSES)
        with self.db.transaction():
            self._require(item_id)
            self.db.execute(
                f"UPDATE knowledge_items SET status = ?, updated_at = ?, change_seq = {NEXT_CHANGE} WHERE id = ?",
                [status, utc_now(), item_id],
            )
            return self._require(item_id)  # type: ignore[return-value]

    def delete(self, item_id: str) -> None:
        """Delete an item and its votes."""
        with self.db.transaction():
            self._require(item_id)
            self.db.execute("DELETE FROM knowledge_votes WHERE item_id = ?", [item_id])
            self._delete(item_id)

    def _filters(self, statuses: list[str] | None, category: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses:
            for status in statuses:
                check_choice("status", status, KNOWLEDGE_STATUSES)
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if category:
            clauses.append("category = ?")
            params.append(category)
        return " AND ".join(clauses), params

    def list_items(
        self,
        statuses: list[str] | None = None,
        category: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[KnowledgeItem]:
        where, params = self._filters(statuses, category)
        return self._list(where, params, limit=limit, offset=offset)  # type: ignore[return-value]

    def count_items(self, statuses: list[str] | None = None, category: str | None = None) -> int:
        where, params = self._filters(statuses, category)
        return self._count(where, params)

    def search(
        self, query: str, limit: int | None = 100, offset: int = 0, statuses: list[str] | None = None
    ) -> list[KnowledgeItem]:
        """Items whose title or content contains ``query`` (case-insensitive; % _ \\ are literal)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError("query must be a non-empty string")
        pattern = like_pattern(query)
        where, params = self._filters(statuses, None)
        clause = "(title ILIKE ? ESCAPE '\\' OR content ILIKE ? ESCAPE '\\')"
        where = f"{clause} AND {where}" if where else clause
        return self._list(where, [pattern, pattern, *params], limit=limit, offset=offset)  # type: ignore[return-value]

    def vote(self, item_id: str, user_id: str, vote: int) -> VoteCounts:
        """Cast or change ``user_id``'s vote (+1 or -1) on an existing item."""
        check_id("user_id", user_id)
        check_choice("vote", vote, (1, -1))
        with self.db.transaction():
            self._require(item_id)
            self._upsert(
                {"item_id": item_id, "user_id": user_id, "vote": vote, "voted_at": utc_now()},
                table="knowledge_votes",
                key=("item_id", "user_id"),
            )
            return self.get_votes(item_id)

    def get_votes(self, item_id: str) -> VoteCounts:
        row = self.db.fetch_one(
            """SELECT count(*) FILTER (WHERE vote > 0) AS upvotes, count(*) FILTER (WHERE vote < 0) AS downvotes
               FROM knowledge_votes WHERE item_id = ?""",
            [item_id],
        )
        assert row is not None
        return {"upvotes": int(row["upvotes"]), "downvotes": int(row["downvotes"])}

    def list_votes(self, item_id: str, limit: int | None = None, offset: int = 0) -> list[KnowledgeVote]:
        check_page(limit, offset)
        return self._list(  # type: ignore[return-value]
            "item_id = ?",
            [item_id],
            limit=limit,
            offset=offset,
            order_by="voted_at DESC, user_id",
            table="knowledge_votes",
        )
