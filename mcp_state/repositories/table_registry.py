"""Repository for the table registry."""

from __future__ import annotations

from datetime import datetime

from mcp_state.gateway import utc_now
from mcp_state.repositories.base import Repository, check_id
from mcp_state.types import RegisteredTable


class TableRegistryRepository(Repository):
    table = "table_registry"
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
            self.db.execute(
                """INSERT INTO table_registry (id, name, folder, sync_strategy, primary_key, description,
                       registered_by, registered_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET name = excluded.name, folder = excluded.folder,
                       sync_strategy = excluded.sync_strategy, primary_key = excluded.primary_key,
                       description = excluded.description,
                       registered_by = coalesce(table_registry.registered_by, excluded.registered_by)""",
                [id, name, folder, sync_strategy, primary_key, description, registered_by, registered_at or utc_now()],
            )
            return self._require(id)  # type: ignore[return-value]

    def unregister(self, table_id: str) -> None:
        self._delete(table_id)

    def get(self, table_id: str) -> RegisteredTable | None:
        return self._get(table_id)  # type: ignore[return-value]

    def list_all(self, folder: str | None = None, limit: int | None = None, offset: int = 0) -> list[RegisteredTable]:
        if folder:
            return self._list("folder = ?", [folder], limit=limit, offset=offset)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset)  # type: ignore[return-value]

    def count(self, folder: str | None = None) -> int:
        return self._count("folder = ?", [folder]) if folder else self._count()
