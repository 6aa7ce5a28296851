"""The one check of a reference: does the user, table or item a row or a filter names exist?

Every tool that stores a reference (votes, Telegram links, sync settings, dataset permissions
and script owners name a user; profiles a table) or filters by one (a user, table or item id)
asks here first, so a mistyped id is a ``NotFoundError`` that says how to find the right one,
never a dangling row or an empty page that looks like an answer.
"""

from __future__ import annotations

from mcp_state.errors import NotFoundError
from mcp_state.gateway import Gateway


class References:
    """Existence checks on one gateway (inside a caller's transaction they join it)."""

    def __init__(self, db: Gateway) -> None:
        self.db = db

    def _exists(self, sql: str, *params: str) -> bool:
        return self.db.fetch_value(sql, params) is not None

    def user(self, user_id: str, argument: str = "user_id") -> str:
        """``user_id`` if a user has that id; else NotFoundError (naming the id when an email was given)."""
        if self._exists("SELECT 1 FROM users WHERE id = ?", user_id):
            return user_id
        owner = self.db.fetch_value("SELECT id FROM users WHERE lower(email) = lower(?)", [user_id])
        if owner is not None:
            raise NotFoundError(
                f"{argument} '{user_id}' is an email, not a user id: pass {argument}='{owner}' "
                "(find_user_by_email gives the id for an email)"
            )
        raise NotFoundError(
            f"no user has id '{user_id}' ({argument}); find the id with find_user_by_email(email), "
            "or list_users"
        )

    def table(self, table_id: str, argument: str = "table_id") -> str:
        """``table_id`` if the table is registered, has a sync state or any sync history."""
        if self._exists(
            """SELECT 1 WHERE EXISTS (SELECT 1 FROM table_registry WHERE id = ?)
               OR EXISTS (SELECT 1 FROM sync_state WHERE table_id = ?)
               OR EXISTS (SELECT 1 FROM sync_history WHERE table_id = ?)""",
            table_id,
            table_id,
            table_id,
        ):
            return table_id
        raise NotFoundError(
            f"no table '{table_id}' ({argument}) is registered or has synced; "
            "list_registered_tables and list_sync_states show the table ids"
        )

    def item(self, item_id: str, argument: str = "item_id") -> str:
        """``item_id`` if a knowledge item has that id."""
        if self._exists("SELECT 1 FROM knowledge_items WHERE id = ?", item_id):
            return item_id
        raise NotFoundError(
            f"no knowledge item '{item_id}' ({argument}); search_knowledge or list_knowledge_items show the ids"
        )

    def actor(self, actor: str, argument: str = "user_id") -> str:
        """``actor`` if an audit entry has it as actor (case-insensitively)."""
        if self._exists("SELECT 1 FROM audit_log WHERE lower(user_id) = lower(?) LIMIT 1", actor):
            return actor
        recent = self.db.fetch_all(
            """SELECT user_id FROM audit_log WHERE user_id IS NOT NULL
               GROUP BY user_id ORDER BY max(seq) DESC LIMIT 10"""
        )
        names = ", ".join(row["user_id"] for row in recent) or "none yet"
        raise NotFoundError(f"no audit entry has actor '{actor}' ({argument}); recent actors: {names}")
