"""Repository for the audit log. Append-only: nothing here updates or deletes a row."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Json, to_utc, utc_now
from mcp_state.repositories.base import MAX_INT32, Repository, check_id, check_non_negative
from mcp_state.types import AuditEntry

# Newest first in commit order, never by the clock (an entry written while the clock stood
# an hour back still comes first).
AUDIT_ORDER = "seq DESC"


class AuditRepository(Repository):
    table = "audit_log"
    order_by = AUDIT_ORDER
    noun = "audit entry"

    def log(
        self,
        user_id: str | None = None,
        action: str = "",
        resource: str | None = None,
        params: dict[str, Any] | None = None,
        result: str | None = None,
        duration_ms: int | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Append one entry; returns its id."""
        check_id("action", action)
        check_non_negative("duration_ms", duration_ms, maximum=MAX_INT32)
        entry_id = str(uuid.uuid4())
        with self.db.write_lock():
            # Stamped under the write lock, so timestamp order and seq order agree across threads
            # (on DuckDB; on PostgreSQL, where writers do not queue, seq gives the order).
            # One statement: on its own it commits alone, in a caller's transaction it joins it.
            self.db.execute(
                """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    entry_id,
                    timestamp or utc_now(),
                    user_id,
                    action,
                    resource,
                    Json(params),
                    result,
                    duration_ms,
                ],
            )
        return entry_id

    # The shared write helpers would rewrite or remove entries: the log refuses them.
    def _upsert(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise InvalidArgumentError("the audit log is append-only: entries cannot be changed")

    def _delete(self, *key: Any) -> None:
        raise InvalidArgumentError("the audit log is append-only: entries cannot be deleted")

    def get(self, entry_id: str) -> AuditEntry | None:
        return self._get(entry_id)  # type: ignore[return-value]

    @staticmethod
    def _filters(
        user_id: str | None,
        action: str | None,
        resource: str | None,
        since: datetime | None,
        until: datetime | None,
        result: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if user_id is not None:  # actors are matched case-insensitively: Claude is claude
            clauses.append("lower(user_id) = lower(?)")
            params.append(user_id)
        for column, value in (
            ("action", action),
            ("resource", resource),
            ("result", result),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None and until is not None and to_utc(since) > to_utc(until):
            raise InvalidArgumentError("since must not be after until")
        if since is not None:
            clauses.append("timestamp >= ?")
            params.append(since)
        if until is not None:
            clauses.append("timestamp < ?")
            params.append(until)
        return " AND ".join(clauses), params

    def query(
        self,
        user_id: str | None = None,
        action: str | None = None,
        limit: int = 50,
        *,
        resource: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        result: str | None = None,
        offset: int = 0,
        after: tuple[int] | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first; ``since`` is inclusive, ``until`` exclusive; ``after``: the
        previous page's last ``seq`` (keyset paging: rows written meanwhile shift nothing)."""
        where, params = self._filters(user_id, action, resource, since, until, result)
        if after is not None:
            where = " AND ".join(filter(None, [where, "seq < ?"]))
            params.append(after[0])
        return self._list(where, params, limit=limit, offset=offset)  # type: ignore[return-value]

    def count(
        self,
        user_id: str | None = None,
        action: str | None = None,
        *,
        resource: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        result: str | None = None,
    ) -> int:
        where, params = self._filters(user_id, action, resource, since, until, result)
        return self._count(where, params)
