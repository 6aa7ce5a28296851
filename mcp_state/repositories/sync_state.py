"""Repository for sync state and history."""

from __future__ import annotations

import uuid
from datetime import datetime

from mcp_state.gateway import utc_now
from mcp_state.repositories.base import Repository, check_choice, check_id, check_non_negative
from mcp_state.types import SYNC_STATUSES, SyncHistoryEntry, SyncState

HISTORY_ORDER = "synced_at DESC, seq DESC"


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
        if status is not None:
            check_choice("status", status, SYNC_STATUSES)
            return self._list("status = ?", [status], limit=limit, offset=offset)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset)  # type: ignore[return-value]

    def count_states(self, *, status: str | None = None) -> int:
        return self._count("status = ?", [status]) if status is not None else self._count()

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
        """Record one sync of ``table_id``: its new state and a history entry, atomically."""
        check_id("table_id", table_id)
        for name, value in (
            ("rows", rows),
            ("file_size_bytes", file_size_bytes),
            ("uncompressed_size_bytes", uncompressed_size_bytes),
            ("columns", columns),
            ("duration_ms", duration_ms),
        ):
            check_non_negative(name, value)
        check_choice("status", status, SYNC_STATUSES)
        with self.db.transaction():
            # Stamped under the write lock, so time order and commit order agree across threads.
            now = synced_at or utc_now()
            state = self._upsert(
                {
                    "table_id": table_id,
                    "last_sync": now,
                    "rows": rows,
                    "file_size_bytes": file_size_bytes,
                    "uncompressed_size_bytes": uncompressed_size_bytes,
                    "columns": columns,
                    "hash": hash,
                    "status": status,
                    "error": error,
                }
            )
            self.db.execute(
                """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [str(uuid.uuid4()), table_id, now, rows, duration_ms, status, error],
            )
            return state  # type: ignore[return-value]

    def get_sync_history(self, table_id: str, limit: int = 10, offset: int = 0) -> list[SyncHistoryEntry]:
        """Sync runs of ``table_id``, newest first (ties broken by insertion order)."""
        return self._list(  # type: ignore[return-value]
            "table_id = ?",
            [table_id],
            limit=limit,
            offset=offset,
            order_by=HISTORY_ORDER,
            table="sync_history",
        )

    def count_history(self, table_id: str) -> int:
        return int(self.db.fetch_value("SELECT count(*) FROM sync_history WHERE table_id = ?", [table_id]))

    def delete_state(self, table_id: str) -> None:
        """Forget a table's sync state (its history stays)."""
        self._delete(table_id)
