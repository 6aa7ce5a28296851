"""Repositories for Telegram links, one-time codes and the script registry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Gateway, Source, to_utc, utc_now
from mcp_state.repositories.base import Repository, check_choice, check_id
from mcp_state.types import SCRIPT_STATUSES, PendingCode, Script, TelegramLink

DEFAULT_CODE_TTL = timedelta(minutes=10)


def _check_chat_id(chat_id: object) -> int:
    if isinstance(chat_id, bool) or not isinstance(chat_id, int) or not -(2**63) <= chat_id < 2**63:
        raise InvalidArgumentError(f"chat_id must be a whole number (a Telegram chat id); got {chat_id!r}")
    return chat_id


class TelegramRepository(Repository):
    table = "telegram_links"
    key = ("user_id",)
    order = (("user_id", False),)
    order_by = "user_id"
    noun = "Telegram link for user"

    def link_user(self, user_id: str, chat_id: int, linked_at: datetime | None = None) -> TelegramLink:
        """Link (or re-link) ``user_id`` to a Telegram chat."""
        check_id("user_id", user_id)
        _check_chat_id(chat_id)
        with self.db.transaction():
            return self._upsert(  # type: ignore[return-value]
                {"user_id": user_id, "chat_id": chat_id, "linked_at": linked_at or utc_now()}
            )

    def unlink_user(self, user_id: str) -> None:
        self._delete(user_id)

    def get_link(self, user_id: str) -> TelegramLink | None:
        return self._get(user_id)  # type: ignore[return-value]

    def get_all_links(
        self, limit: int | None = None, offset: int = 0, after: tuple[Any, ...] | None = None
    ) -> list[TelegramLink]:
        return self._list(limit=limit, offset=offset, after=after)  # type: ignore[return-value]

    def count(self) -> int:
        return self._count()


class PendingCodeRepository(Repository):
    """One-time codes that link a Telegram chat. A code is valid once, for ``ttl`` after creation."""

    table = "pending_codes"
    key = ("code",)
    order_by = "created_at, code"
    noun = "pending code"

    def __init__(self, conn: Source | Gateway, ttl: timedelta | float = DEFAULT_CODE_TTL) -> None:
        super().__init__(conn)
        self.ttl = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)

    def create_code(self, code: str, chat_id: int, created_at: datetime | None = None) -> None:
        check_id("code", code)
        _check_chat_id(chat_id)
        self.db.execute(
            "INSERT INTO pending_codes (code, chat_id, created_at) VALUES (?, ?, ?)",
            [code, chat_id, created_at or utc_now()],
        )

    def verify_code(self, code: str) -> PendingCode | None:
        """Consume ``code``: the chat it was issued to, or None if unknown, used or expired.

        The delete and the read are one statement under the write lock, so of two
        concurrent verifications of one code exactly one gets the chat.
        """
        if not isinstance(code, str) or not code:
            return None
        rows = self.db.execute_returning(
            "DELETE FROM pending_codes WHERE code = ? RETURNING chat_id, created_at", [code]
        )
        if not rows:
            return None
        row = rows[0]
        created = row["created_at"]
        if created is not None and utc_now() - to_utc(created) > self.ttl:
            return None
        return {"chat_id": row["chat_id"], "created_at": created}

    def purge_expired(self) -> int:
        """Delete codes older than the TTL; returns how many."""
        cutoff = utc_now() - self.ttl
        return self.db.execute("DELETE FROM pending_codes WHERE created_at < ?", [cutoff])

    def count(self) -> int:
        return self._count()


class ScriptRepository(Repository):
    table = "script_registry"
    order = (("name", False), ("id", False))
    order_by = "name, id"
    noun = "script"

    def deploy(
        self,
        id: str,
        name: str,
        owner: str | None = None,
        schedule: str | None = None,
        source: str = "",
        deployed_at: datetime | None = None,
    ) -> Script:
        """Deploy or redeploy a script; a redeploy keeps its owner (unless given) and run history."""
        check_id("id", id)
        check_id("name", name)
        if not isinstance(source, str):
            raise InvalidArgumentError("source must be a string")
        with self.db.transaction():
            return self._upsert(
                {
                    "id": id,
                    "name": name,
                    "owner": owner,
                    "schedule": schedule,
                    "source": source,
                    "deployed_at": deployed_at or utc_now(),
                },
                keep=("owner",),
            )  # type: ignore[return-value]

    def undeploy(self, script_id: str) -> None:
        self._delete(script_id)

    def get(self, script_id: str) -> Script | None:
        return self._get(script_id)  # type: ignore[return-value]

    def list_all(self, owner: str | None = None, limit: int | None = None, offset: int = 0) -> list[Script]:
        if owner:
            return self._list("owner = ?", [owner], limit=limit, offset=offset)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset)  # type: ignore[return-value]

    def list_summaries(
        self,
        owner: str | None = None,
        last_status: str | None = None,
        limit: int | None = None,
        after: tuple[Any, ...] | None = None,
    ) -> list[dict[str, Any]]:
        """Scripts without their source (``source_chars`` gives its length), by name."""
        where, params = self._filters(owner, last_status)
        return self._list(
            where,
            params,
            limit=limit,
            after=after,
            select=self.db.dialect.columns_except(self.table, ("source",))
            + ", length(source) AS source_chars",
        )

    def count(self, owner: str | None = None, last_status: str | None = None) -> int:
        return self._count(*self._filters(owner, last_status))

    @staticmethod
    def _filters(owner: str | None, last_status: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if owner:
            clauses.append("owner = ?")
            params.append(owner)
        if last_status:
            check_choice("last_status", last_status, SCRIPT_STATUSES)
            clauses.append("last_status = ?")
            params.append(last_status)
        return " AND ".join(clauses), params

    def record_run(self, script_id: str, status: str, ran_at: datetime | None = None) -> Script:
        """Record that a script ran: its ``last_run`` and ``last_status``."""
        check_choice("status", status, SCRIPT_STATUSES)
        with self.db.transaction():
            self._require(script_id)
            self.db.execute(
                "UPDATE script_registry SET last_run = ?, last_status = ? WHERE id = ?",
                [ran_at or utc_now(), status, script_id],
            )
            return self._require(script_id)  # type: ignore[return-value]
