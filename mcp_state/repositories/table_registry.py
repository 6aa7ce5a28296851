"""Repository for the table registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_state.gateway import utc_now
from mcp_state.repositories.base import Repository, check_id
from mcp_state.types import RegisteredTable


class TableRegistryRepository(Repository):
    table = "table_registry"
    order = (("name", False), ("id", False))
    order_by = "name, id"
    noun = "registered table"

    def register(
        self,
        id: str,
        name: str,
        folder: str | None = None,
        sync_strategy: str | None = None,
        primary_key: str | None = None,
        description: str | None = None,
        registered_by: str | None = None,
        registered_at: datetime | None = None,
    ) -> RegisteredTable:
        """Register a table, or update its details; a re-registration keeps when and by whom it was first registered."""
        check_id("id", id)
        check_id("name", name)
        with self.db.transaction():
            return self._upsert(
                {
                    "id": id,
                    "name": name,
                    "folder": folder,
                    "sync_strategy": sync_strategy,
                    "primary_key": primary_key,
                    "description": description,
                    "registered_by": registered_by,
                    "registered_at": registered_at or utc_now(),
                },
                insert_only=("registered_by", "registered_at"),
            )  # type: ignore[return-value]

    def unregister(self, table_id: str) -> None:
        self._delete(table_id)

    def get(self, table_id: str) -> RegisteredTable | None:
        return self._get(table_id)  # type: ignore[return-value]

    def list_all(
        self,
        folder: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: tuple[Any, ...] | None = None,
    ) -> list[RegisteredTable]:
        if folder:
            return self._list("folder = ?", [folder], limit=limit, offset=offset, after=after)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset, after=after)  # type: ignore[return-value]

    def count(self, folder: str | None = None) -> int:
        return self._count("folder = ?", [folder]) if folder else self._count()
