"""Repository for sync state and history.

Newest first means commit order (``seq``), never the clock: a sync recorded while the clock
stood an hour back still comes first. ``last_sync`` never goes backwards: when the clock
reads earlier than the stored ``last_sync``, the later time is kept and the history row
says so in ``note``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import to_utc, utc_now
from mcp_state.repositories.base import (
    MAX_INT32,
    Repository,
    check_choice,
    check_id,
    check_non_negative,
)
from mcp_state.types import SYNC_STATUSES, SyncFailureSummary, SyncHistoryEntry, SyncState

HISTORY_ORDER = "seq DESC"
# Columns a sync report may leave out: they keep what is stored.
_KEPT = ("rows", "file_size_bytes", "uncompressed_size_bytes", "columns", "hash")


class SyncStateRepository(Repository):
    table = "sync_state"
    key = ("table_id",)
    order_by = "table_id"
    noun = "sync state for table"

    def get_table_state(self, table_id: str) -> SyncState | None:
        return self._get(table_id)  # type: ignore[return-value]

    def get_last_sync(self, table_id: str) -> datetime | None:
        return self.db.fetch_value("SELECT last_sync FROM sync_state WHERE table_id = ?", [table_id])

    def get_all_states(
        self, *, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SyncState]:
        where, params = self._state_filter(status)
        return self._list(where, params, limit=limit, offset=offset)  # type: ignore[return-value]

    def list_states(
        self, *, status: str | None = None, after: tuple[str] | None = None, limit: int = 50
    ) -> list[SyncState]:
        """States by table id, from just after ``after`` (the last table id of the previous page)."""
        where, params = self._state_filter(status)
        if after is not None:
            where = " AND ".join(filter(None, [where, "table_id > ?"]))
            params.append(after[0])
        return self._list(where, params, limit=limit)  # type: ignore[return-value]

    def count_states(self, *, status: str | None = None) -> int:
        return self._count(*self._state_filter(status))

    @staticmethod
    def _state_filter(status: str | None) -> tuple[str, list[Any]]:
        if status is None:
            return "", []
        check_choice("status", status, SYNC_STATUSES)
        return "status = ?", [status]

    def update_sync(
        self,
        table_id: str,
        rows: int,
        file_size_bytes: int,
        hash: str,
        uncompressed_size_bytes: int = 0,
        columns: int = 0,
        status: str = "ok",
        error: str | None = None,
        duration_ms: int | None = None,
        synced_at: datetime | None = None,
    ) -> SyncState:
        """Record one sync of ``table_id`` with every value given: its new state and a history entry."""
        return self._record(
            table_id,
            {
                "rows": rows,
                "file_size_bytes": file_size_bytes,
                "hash": hash,
                "uncompressed_size_bytes": uncompressed_size_bytes,
                "columns": columns,
            },
            status=status,
            error=error,
            duration_ms=duration_ms,
            synced_at=synced_at,
            keep=False,
        )

    def record(
        self,
        table_id: str,
        rows: int | None = None,
        status: str = "ok",
        error: str | None = None,
        file_size_bytes: int | None = None,
        hash: str | None = None,
        uncompressed_size_bytes: int | None = None,
        columns: int | None = None,
        duration_ms: int | None = None,
        synced_at: datetime | None = None,
    ) -> SyncState:
        """Record one sync as reported: values left out (None) keep what is stored.

        ``status='error'`` needs ``error``; any other status clears the stored error.
        """
        return self._record(
            table_id,
            {
                "rows": rows,
                "file_size_bytes": file_size_bytes,
                "hash": hash,
                "uncompressed_size_bytes": uncompressed_size_bytes,
                "columns": columns,
            },
            status=status,
            error=error,
            duration_ms=duration_ms,
            synced_at=synced_at,
            keep=True,
        )

    def _record(
        self,
        table_id: str,
        values: dict[str, Any],
        *,
        status: str,
        error: str | None,
        duration_ms: int | None,
        synced_at: datetime | None,
        keep: bool,
    ) -> SyncState:
        check_id("table_id", table_id)
        for name in ("rows", "file_size_bytes", "uncompressed_size_bytes", "columns"):
            check_non_negative(name, values[name])
        check_non_negative("duration_ms", duration_ms, maximum=MAX_INT32)
        check_non_negative("columns", values["columns"], maximum=MAX_INT32)
        check_choice("status", status, SYNC_STATUSES)
        if keep and status == "error" and not (isinstance(error, str) and error.strip()):
            raise InvalidArgumentError("status 'error' needs the error message: pass error='...'")
        with self.db.transaction():
            # Stamped under the write lock, so commit order and the stamps agree within a process.
            now = to_utc(synced_at) if synced_at is not None else utc_now()
            stored = self.get_last_sync(table_id)
            last_sync, note = now, None
            if stored is not None and stored > now:
                last_sync = stored
                note = (
                    f"clock stepped back {stored - now} behind the stored last_sync; "
                    f"last_sync kept at {stored.isoformat()}"
                )
            state = self._upsert(
                {
                    "table_id": table_id,
                    "last_sync": last_sync,
                    **values,
                    "status": status,
                    "error": error,
                },
                keep=_KEPT if keep else (),
            )
            self.db.execute(
                """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error, note)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [str(uuid.uuid4()), table_id, now, values["rows"], duration_ms, status, error, note],
            )
            return state  # type: ignore[return-value]

    # -- history -----------------------------------------------------------------------
    def get_sync_history(self, table_id: str, limit: int = 10, offset: int = 0) -> list[SyncHistoryEntry]:
        """Sync runs of ``table_id``, newest (last committed) first."""
        return self._list(  # type: ignore[return-value]
            "table_id = ?",
            [table_id],
            limit=limit,
            offset=offset,
            order_by=HISTORY_ORDER,
            table="sync_history",
        )

    def history(
        self,
        table_id: str | None = None,
        *,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: tuple[int] | None = None,
        limit: int = 50,
    ) -> list[SyncHistoryEntry]:
        """Runs of one table or all, newest first, from just after ``after`` (the previous page's last seq)."""
        where, params = self._history_filters(table_id, status, since, until)
        if after is not None:
            where = " AND ".join(filter(None, [where, "seq < ?"]))
            params.append(after[0])
        return self._list(  # type: ignore[return-value]
            where, params, limit=limit, order_by=HISTORY_ORDER, table="sync_history"
        )

    def count_history(
        self,
        table_id: str | None = None,
        *,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        where, params = self._history_filters(table_id, status, since, until)
        sql = "SELECT count(*) FROM sync_history" + (f" WHERE {where}" if where else "")
        return int(self.db.fetch_value(sql, params))

    @staticmethod
    def _history_filters(
        table_id: str | None, status: str | None, since: datetime | None, until: datetime | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if table_id is not None:
            clauses.append("table_id = ?")
            params.append(table_id)
        if status is not None:
            check_choice("status", status, SYNC_STATUSES)
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("synced_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("synced_at < ?")
            params.append(until)
        return " AND ".join(clauses), params

    def failure_summary(
        self, since: datetime, until: datetime | None = None, limit: int = 50
    ) -> list[SyncFailureSummary]:
        """Per table with failed syncs in [since, until): how many failed (of how many runs), the
        last failure's time and error, and the table's current status; most failures first."""
        where, params = self._history_filters(None, None, since, until)
        sql = self.db.dialect
        failed = "h.status = 'error'"
        return self.db.fetch_all(  # type: ignore[return-value]
            f"""SELECT h.table_id,
                       count(*) FILTER (WHERE h.status = 'error') AS failures,
                       count(*) AS syncs,
                       {sql.arg_max("h.synced_at", "h.seq", failed)} AS last_failure_at,
                       {sql.arg_max("h.error", "h.seq", failed)} AS last_error,
                       {sql.any_value("s.status")} AS current_status,
                       {sql.any_value("s.last_sync")} AS last_sync
                FROM sync_history h LEFT JOIN sync_state s ON s.table_id = h.table_id
                WHERE {where}
                GROUP BY h.table_id
                HAVING count(*) FILTER (WHERE h.status = 'error') > 0
                ORDER BY failures DESC, max(h.seq) FILTER (WHERE h.status = 'error') DESC, h.table_id
                LIMIT ?""",
            [*params, limit],
        )

    def is_known(self, table_id: str) -> bool:
        """Whether ``table_id`` has a sync state or any sync history."""
        return (
            self.db.fetch_value(
                """SELECT 1 WHERE EXISTS (SELECT 1 FROM sync_state WHERE table_id = ?)
                   OR EXISTS (SELECT 1 FROM sync_history WHERE table_id = ?)""",
                [table_id, table_id],
            )
            is not None
        )

    def delete_state(self, table_id: str) -> None:
        """Forget a table's sync state (its history stays)."""
        self._delete(table_id)
