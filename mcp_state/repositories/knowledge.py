"""Repository for corporate memory knowledge items and votes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mcp_state.dialect import DUCKDB, Dialect
from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Json, utc_now
from mcp_state.repositories.base import (
    Order,
    Repository,
    check_choice,
    check_id,
    check_page,
    check_str_list,
    like_pattern,
)
from mcp_state.repositories.knowledge_search import ranked_page
from mcp_state.types import KNOWLEDGE_STATUSES, KnowledgeItem, KnowledgeVote, VoteCounts

# Most recently changed first, in commit order (``change_seq``, a new number on every change
# made here or by the legacy import), never by the clock: an update made while the clock stood
# an hour back still sorts first. Every item has one (migration 5), so this is a plain column
# sort that DuckDB's top-N answers from the newest row groups.
ITEM_ORDER = "change_seq DESC, id"
NEXT_CHANGE = "nextval('knowledge_change_seq')"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHANGED = "coalesce(updated_at, created_at, TIMESTAMP '1970-01-01')"
_CREATED = "coalesce(created_at, TIMESTAMP '1970-01-01')"
# Listing orders by name: (expression, descending) pairs, unique per row, never NULL.
SORTS: dict[str, Order] = {
    "updated": (("change_seq", True), ("id", False)),
    "created": ((_CREATED, True), ("id", False)),
    "votes": (("score", True), (_CHANGED, True), ("id", False)),
}
VOTE_ORDER: Order = (("coalesce(voted_at, TIMESTAMP '1970-01-01')", True), ("user_id", False))
SNIPPET = 200
# A summary: the item without its content (a snippet instead), with its vote counts.
_SUMMARY_COLUMNS = (
    f"id, title, status, category, tags, updated_at, created_at, change_seq, "
    f"regexp_replace(left(coalesce(content, ''), {SNIPPET * 2}), '\\s+', ' ', 'g') AS snippet"
)
_VOTES = """(SELECT item_id, count(*) FILTER (WHERE vote > 0) AS upvotes,
                    count(*) FILTER (WHERE vote < 0) AS downvotes
             FROM knowledge_votes GROUP BY item_id)"""


def reindex_sql(ids_sql: str, dialect: Dialect = DUCKDB) -> list[str]:
    """Statements that rebuild the word index of the items whose ids ``ids_sql`` selects."""
    return [
        f"DELETE FROM knowledge_words WHERE item_id IN ({ids_sql})",
        dialect.knowledge_words_of(f"WHERE id IN ({ids_sql})"),
    ]


def vote_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row.get("voted_at") or EPOCH, row["user_id"])


def sort_key(sort: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """The sort key of a summary row in ``sort`` (what the next page starts after)."""
    changed = row.get("updated_at") or row.get("created_at") or EPOCH
    if sort == "created":
        return (row.get("created_at") or EPOCH, row["id"])
    if sort == "votes":
        return (row["upvotes"] - row["downvotes"], changed, row["id"])
    return (row["change_seq"], row["id"])


class KnowledgeRepository(Repository):
    table = "knowledge_items"
    order_by = ITEM_ORDER
    noun = "knowledge item"
    hidden = ("change_seq", "item_key")

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
            self._index(id)
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
                if {"title", "content", "tags"} & set(changes):
                    self._index(item_id)
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
            self.db.execute("DELETE FROM knowledge_words WHERE item_id = ?", [item_id])
            self._delete(item_id)

    def _index(self, item_id: str) -> None:
        """Rebuild the item's rows of the word index (inside the caller's transaction)."""
        for sql in reindex_sql("?", self.db.dialect):
            self.db.execute(sql, [item_id])

    def _filters(
        self, statuses: Sequence[str] | None, category: str | None, tag: str | None = None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if tag:
            words = self.query_words(tag)
            if words:  # the word index narrows the items down before the exact check
                clauses.append("id IN (SELECT item_id FROM knowledge_words WHERE word = ? AND in_tags)")
                params.append(words[0])
            clauses.append(self.db.dialect.json_list_has("tags"))
            params.append(tag)
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
        statuses: Sequence[str] | None = None,
        category: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[KnowledgeItem]:
        where, params = self._filters(statuses, category)
        return self._list(where, params, limit=limit, offset=offset)  # type: ignore[return-value]

    def count_items(self, statuses: Sequence[str] | None = None, category: str | None = None) -> int:
        where, params = self._filters(statuses, category)
        return self._count(where, params)

    def search(
        self, query: str, limit: int | None = 100, offset: int = 0, statuses: Sequence[str] | None = None
    ) -> list[KnowledgeItem]:
        """Items whose title or content contains ``query`` (case-insensitive; % _ \\ are literal)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError("query must be a non-empty string")
        pattern = like_pattern(query)
        where, params = self._filters(statuses, None)
        clause = "(title ILIKE ? ESCAPE '\\' OR content ILIKE ? ESCAPE '\\')"
        where = f"{clause} AND {where}" if where else clause
        return self._list(where, [pattern, pattern, *params], limit=limit, offset=offset)  # type: ignore[return-value]

    def list_summaries(
        self,
        statuses: Sequence[str] | None = None,
        category: str | None = None,
        tag: str | None = None,
        sort: str = "updated",
        limit: int = 50,
        after: tuple[Any, ...] | None = None,
        include_content: bool = False,
        content_limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Items as summaries (a snippet for the content) with vote counts, in ``sort`` order.

        ``include_content`` adds the content (at most ``content_limit`` characters of it) and
        ``content_chars``, its whole length.
        """
        check_choice("sort", sort, SORTS)
        where, params = self._filters(statuses, category, tag)
        table = None
        if sort == "votes":
            table = f"""(SELECT k.*, coalesce(v.upvotes, 0) - coalesce(v.downvotes, 0) AS score
                         FROM knowledge_items k LEFT JOIN {_VOTES} v ON v.item_id = k.id) AS t"""
        # The page's ids first (sorting only the keys), then the summaries of those rows alone.
        keys = self._list(
            where, params, limit=limit, after=after, order=SORTS[sort], table=table, select="id"
        )
        content = ""
        if include_content:
            part = "content" if content_limit is None else f"left(content, {int(content_limit)})"
            content = f", {part} AS content, length(content) AS content_chars"
        return [_summary(row) for row in self._summaries([k["id"] for k in keys], extra=content)]

    def _summaries(self, ids: list[str], extra: str = "") -> list[dict[str, Any]]:
        """Summary rows of the items ``ids``, in that order, with their vote counts."""
        if not ids:
            return []
        columns = _SUMMARY_COLUMNS + extra
        found = {
            row["id"]: row
            for row in self.db.fetch_all(
                f"SELECT {columns} FROM knowledge_items WHERE id IN ({', '.join('?' for _ in ids)})", ids
            )
        }
        rows = [found[i] for i in ids if i in found]
        self._add_votes(rows)
        return rows

    def _add_votes(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        counts = {
            row["item_id"]: row
            for row in self.db.fetch_all(
                f"""SELECT item_id, count(*) FILTER (WHERE vote > 0) AS upvotes,
                           count(*) FILTER (WHERE vote < 0) AS downvotes
                    FROM knowledge_votes WHERE item_id IN ({", ".join("?" for _ in rows)}) GROUP BY item_id""",
                [row["id"] for row in rows],
            )
        }
        for row in rows:
            found = counts.get(row["id"], {})
            row["upvotes"] = int(found.get("upvotes", 0))
            row["downvotes"] = int(found.get("downvotes", 0))

    def search_ranked(
        self,
        query: str,
        statuses: Sequence[str] | None = None,
        tag: str | None = None,
        limit: int = 50,
        after: tuple[Any, ...] | None = None,
    ) -> list[dict[str, Any]]:
        """Items with any word of ``query`` in their title, tags or content, best first.

        ``score``: the number of query words the item has, plus up to 0.5 for words in its
        title and 0.25 for words in its tags (so more words, then title matches, rank higher),
        ties by id. Read from the word index (``knowledge_search``); a summary's snippet is
        taken around the first match.
        """
        words = self.query_words(query)
        if not words:
            raise InvalidArgumentError("query has no words to search for (letters or digits)")
        where, params = self._filters(statuses, None, tag)
        page = ranked_page(self.db, words, (where, params), limit, after)
        scores = {row["id"]: row["score"] for row in page}
        rows = self._summaries(list(scores), extra=", left(content, 20000) AS _text")
        return [_summary({**row, "score": scores[row["id"]]}, words) for row in rows]

    def query_words(self, query: str) -> list[str]:
        """The words of ``query`` as the index splits them (lower case letters and digits), at most 20."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError("query must be a non-empty string")
        found = self.db.fetch_value(f"SELECT {self.db.dialect.words('?')}", [query]) or []
        return list(dict.fromkeys(w for w in found if len(w) <= 64))[:20]

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

    def list_votes(
        self, item_id: str, limit: int | None = None, offset: int = 0, after: tuple[Any, ...] | None = None
    ) -> list[KnowledgeVote]:
        check_page(limit, offset)
        return self._list(  # type: ignore[return-value]
            "item_id = ?",
            [item_id],
            limit=limit,
            offset=offset,
            order=VOTE_ORDER,
            table="knowledge_votes",
            after=after,
        )


def _summary(row: dict[str, Any], words: list[str] | None = None) -> dict[str, Any]:
    """A summary row: the snippet cut to ``SNIPPET`` characters (around the first query word)."""
    text = row.pop("_text", None)
    snippet = row.get("snippet") or ""
    if words and text:
        snippet = _around(" ".join(text.split()), words)
    row["snippet"] = snippet if len(snippet) <= SNIPPET else snippet[: SNIPPET - 1] + "…"
    return row


def _around(text: str, words: list[str]) -> str:
    """About ``SNIPPET`` characters of ``text`` around the first of ``words`` in it."""
    lowered = text.lower()
    hits = [i for i in (lowered.find(w) for w in words) if i >= 0]
    if not hits:
        return text[:SNIPPET]
    start = max(0, min(hits) - SNIPPET // 4)
    part = text[start : start + SNIPPET - (1 if start else 0)]
    return ("…" + part) if start else part
